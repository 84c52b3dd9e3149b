package enforce

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
)

// gcsProxy stands between the enforcer's storage client and the storage
// emulator and gives the two requests the enforcer changes objects with the
// GCS semantics fake-gcs-server v1.54 lacks; everything else passes through
// unchanged. The emulator:
//   - rewrites without the requested storageClass or customTime and without
//     checking ifGenerationMatch / ifSourceGenerationMatch;
//   - deletes the live object whatever generation= and ifGenerationMatch
//     say, so deleting a noncurrent version deletes the live one.
//
// The proxy checks the preconditions against the emulator's live object and
// then carries the rewrite out as an upload (conditional on that generation)
// of the source's bytes with the requested attributes, and a delete of the
// live generation only. The check and the change are two steps: the tests do
// not race them. The emulator cannot delete a noncurrent version at all; the
// proxy answers such a request with 400 rather than delete the live object.
//
// This belongs in testenv once more packages change objects this way.
type gcsProxy struct {
	t        testing.TB
	upstream *storage.Client // straight to the emulator
	base     *url.URL
	fwd      *httputil.ReverseProxy
	srv      *httptest.Server

	// beforeChange, when set, runs before a rewrite or delete is judged:
	// tests put a concurrent writer there.
	beforeChange atomic.Pointer[func(bucket, object string)]
	lists        atomic.Int64 // list requests seen
	changes      atomic.Int64 // rewrites and deletes seen
	mu           sync.Mutex
}

func newGCSProxy(t testing.TB, emulator string, upstream *storage.Client) *gcsProxy {
	t.Helper()
	base, err := url.Parse(emulator)
	if err != nil {
		t.Fatal(err)
	}
	p := &gcsProxy{t: t, upstream: upstream, base: base}
	p.fwd = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(base) }}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the endpoint to give the enforcer's client as its emulator.
func (p *gcsProxy) URL() string { return p.srv.URL }

func (p *gcsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/storage/v1/"), "/")
	unescape := func(s string) string {
		u, err := url.PathUnescape(s)
		if err != nil {
			return s
		}
		return u
	}
	switch {
	case r.Method == http.MethodGet && len(segs) == 3 && segs[0] == "b" && segs[2] == "o":
		p.lists.Add(1)
	case r.Method == http.MethodPost && len(segs) == 9 && segs[0] == "b" && segs[2] == "o" && segs[4] == "rewriteTo":
		p.changes.Add(1)
		p.rewrite(w, r, unescape(segs[1]), unescape(segs[3]), unescape(segs[6]), unescape(segs[8]))
		return
	case r.Method == http.MethodDelete && len(segs) == 4 && segs[0] == "b" && segs[2] == "o":
		p.changes.Add(1)
		p.delete(w, r, unescape(segs[1]), unescape(segs[3]))
		return
	}
	if strings.Contains(r.URL.Path, "/rewriteTo/") || strings.Contains(r.URL.Path, "/copyTo/") || r.Method == http.MethodDelete {
		p.t.Errorf("test proxy: %s %s not handled: it would reach the emulator's broken semantics", r.Method, r.URL.Path)
		writeError(w, http.StatusBadRequest, "test proxy: unhandled change")
		return
	}
	p.fwd.ServeHTTP(w, r)
}

func (p *gcsProxy) hook(bucket, object string) {
	if f := p.beforeChange.Load(); f != nil {
		(*f)(bucket, object)
	}
}

// setBeforeChange installs f (nil removes it).
func (p *gcsProxy) setBeforeChange(f func(bucket, object string)) {
	if f == nil {
		p.beforeChange.Store(nil)
		return
	}
	p.beforeChange.Store(&f)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q}]}}`, code, msg, msg)
}

func queryInt(q url.Values, name string) (int64, bool) {
	v, err := strconv.ParseInt(q.Get(name), 10, 64)
	return v, err == nil
}

// liveGeneration is the generation of the live object, 0 when there is none.
func (p *gcsProxy) liveGeneration(r *http.Request, bucket, object string) (int64, error) {
	a, err := p.upstream.Bucket(bucket).Object(object).Attrs(r.Context())
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return a.Generation, nil
}

func (p *gcsProxy) rewrite(w http.ResponseWriter, r *http.Request, srcBucket, srcObject, dstBucket, dstObject string) {
	p.hook(srcBucket, srcObject)
	ctx := r.Context()
	q := r.URL.Query()
	var body struct {
		StorageClass       string            `json:"storageClass"`
		ContentType        string            `json:"contentType"`
		ContentEncoding    string            `json:"contentEncoding"`
		ContentLanguage    string            `json:"contentLanguage"`
		ContentDisposition string            `json:"contentDisposition"`
		CacheControl       string            `json:"cacheControl"`
		CustomTime         string            `json:"customTime"`
		Metadata           map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "rewrite body: "+err.Error())
		return
	}
	// Serialise changes: a precondition check and its change are one step
	// for requests through the proxy.
	p.mu.Lock()
	defer p.mu.Unlock()

	src := p.upstream.Bucket(srcBucket).Object(srcObject)
	if g, ok := queryInt(q, "sourceGeneration"); ok {
		src = src.Generation(g)
	}
	sa, err := src.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		writeError(w, http.StatusNotFound, "No such object: "+srcBucket+"/"+srcObject)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if g, ok := queryInt(q, "ifSourceGenerationMatch"); ok && g != sa.Generation {
		writeError(w, http.StatusPreconditionFailed, "source generation does not match")
		return
	}
	live, err := p.liveGeneration(r, dstBucket, dstObject)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if g, ok := queryInt(q, "ifGenerationMatch"); ok && g != live {
		writeError(w, http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
		return
	}

	rd, err := src.NewReader(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer rd.Close()
	dst := p.upstream.Bucket(dstBucket).Object(dstObject)
	if live == 0 {
		dst = dst.If(storage.Conditions{DoesNotExist: true})
	} else {
		dst = dst.If(storage.Conditions{GenerationMatch: live})
	}
	wr := dst.NewWriter(ctx)
	wr.ChunkSize = 0 // one multipart request: the emulator keeps its storageClass
	pick := func(asked, had string) string {
		if asked != "" {
			return asked
		}
		return had
	}
	wr.StorageClass = pick(body.StorageClass, sa.StorageClass)
	wr.ContentType = pick(body.ContentType, sa.ContentType)
	wr.ContentEncoding = pick(body.ContentEncoding, sa.ContentEncoding)
	wr.ContentLanguage = pick(body.ContentLanguage, sa.ContentLanguage)
	wr.ContentDisposition = pick(body.ContentDisposition, sa.ContentDisposition)
	wr.CacheControl = pick(body.CacheControl, sa.CacheControl)
	wr.CustomTime = sa.CustomTime
	if body.CustomTime != "" {
		if wr.CustomTime, err = time.Parse(time.RFC3339Nano, body.CustomTime); err != nil {
			writeError(w, http.StatusBadRequest, "customTime: "+err.Error())
			return
		}
	}
	wr.Metadata = sa.Metadata
	if body.Metadata != nil {
		wr.Metadata = body.Metadata
	}
	n, err := io.Copy(wr, rd)
	if err == nil {
		err = wr.Close()
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	created := wr.Attrs()
	// The object resource as the emulator serves it.
	res, err := http.Get(p.base.String() + "/storage/v1/b/" + url.PathEscape(dstBucket) + "/o/" +
		url.PathEscape(dstObject) + "?generation=" + strconv.FormatInt(created.Generation, 10))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer res.Body.Close()
	resource, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read rewritten object: %d %v", res.StatusCode, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"kind":"storage#rewriteResponse","totalBytesRewritten":"%d","objectSize":"%d","done":true,"resource":%s}`,
		n, n, resource)
}

func (p *gcsProxy) delete(w http.ResponseWriter, r *http.Request, bucket, object string) {
	p.hook(bucket, object)
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	live, err := p.liveGeneration(r, bucket, object)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if g, ok := queryInt(q, "generation"); ok && g != live {
		_, err := p.upstream.Bucket(bucket).Object(object).Generation(g).Attrs(r.Context())
		if err == nil {
			writeError(w, http.StatusBadRequest, "test proxy: fake-gcs-server cannot delete a noncurrent version")
			return
		}
		writeError(w, http.StatusNotFound, "No such object: "+bucket+"/"+object)
		return
	}
	if g, ok := queryInt(q, "ifGenerationMatch"); ok && g != live {
		writeError(w, http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
		return
	}
	if live == 0 {
		writeError(w, http.StatusNotFound, "No such object: "+bucket+"/"+object)
		return
	}
	if err := p.upstream.Bucket(bucket).Object(object).Delete(r.Context()); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, storage.ErrObjectNotExist) {
			code = http.StatusNotFound
		}
		writeError(w, code, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
