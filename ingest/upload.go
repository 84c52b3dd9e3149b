package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"

	"cloud.google.com/go/storage"
	"golang.org/x/time/rate"
	"google.golang.org/api/googleapi"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ConflictError says the object name is taken by different content: an
// earlier upload under the same name did not carry these bytes.
type ConflictError struct {
	Object       string
	Size         int64
	CRC32C       uint32
	ObjectSize   int64
	ObjectCRC32C uint32
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("object %s exists with other content (size %d crc32c %08x, want size %d crc32c %08x)",
		e.Object, e.ObjectSize, e.ObjectCRC32C, e.Size, e.CRC32C)
}

// ChangedError says a source changed while it was being read; nothing was
// shipped from it and it stays incomplete.
type ChangedError struct {
	Path   string
	Reason string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s changed while read: %s", e.Path, e.Reason)
}

// digest is what one read of a body yields.
type digest struct {
	size   int64
	crc32c uint32
	sha256 string
	head   []byte // the first bytes, for the schema hint
}

const headBytes = 4096

// digestOf reads r to the end.
func digestOf(r io.Reader) (digest, error) {
	h := sha256.New()
	c := crc32.New(castagnoli)
	hw := &headWriter{max: headBytes}
	n, err := io.Copy(io.MultiWriter(h, c, hw), r)
	if err != nil {
		return digest{}, err
	}
	return digest{size: n, crc32c: c.Sum32(), sha256: hex.EncodeToString(h.Sum(nil)), head: hw.buf}, nil
}

type headWriter struct {
	buf []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// upload writes body (which must produce exactly d's bytes) to object with
// ifGenerationMatch=0 and the CRC32C for GCS to check. check runs after the
// last byte is sent and before the object is finalized: an error from it
// cancels the upload, so no object appears. A 412 means the name is taken:
// when the existing object has this size and CRC32C, an earlier attempt
// landed and the upload counts as done; otherwise it is a *ConflictError.
// It returns the object's generation.
func (s *Shipper) upload(ctx context.Context, object string, d digest, meta map[string]string, body io.Reader, check func() error) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.UploadTimeout)
	defer cancel()
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	obj := s.bucket.Object(object)
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(wctx)
	w.ContentType = "text/csv"
	w.Metadata = meta
	w.CRC32C = d.crc32c
	w.SendCRC32C = true
	// One streaming request, no chunk buffer: a failed upload is retried
	// whole by the next pass (ifGenerationMatch=0 keeps that safe), so the
	// client's per-chunk retry buys nothing here, and its buffer costs
	// memory and a copy of every byte.
	w.ChunkSize = 0
	if s.limiter != nil {
		body = &limitedReader{ctx: wctx, r: body, l: s.limiter}
	}
	n, err := io.Copy(w, body)
	if err == nil && n != d.size {
		err = fmt.Errorf("read %d bytes, want %d", n, d.size)
	}
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		abort()
		_ = w.Close() // the upload is abandoned; its error is the abort
		return 0, err
	}
	if err := w.Close(); err != nil {
		var gerr *googleapi.Error
		if !errors.As(err, &gerr) || gerr.Code != http.StatusPreconditionFailed {
			return 0, fmt.Errorf("upload %s: %w", object, err)
		}
		attrs, aerr := obj.Attrs(ctx)
		if aerr != nil {
			return 0, fmt.Errorf("upload %s: exists, and reading its attributes: %w", object, aerr)
		}
		if attrs.Size != d.size || attrs.CRC32C != d.crc32c {
			return 0, &ConflictError{Object: object, Size: d.size, CRC32C: d.crc32c, ObjectSize: attrs.Size, ObjectCRC32C: attrs.CRC32C}
		}
		return attrs.Generation, nil
	}
	attrs := w.Attrs()
	if attrs.CRC32C != d.crc32c || attrs.Size != d.size {
		return 0, fmt.Errorf("upload %s: GCS stored size %d crc32c %08x, sent size %d crc32c %08x", object, attrs.Size, attrs.CRC32C, d.size, d.crc32c)
	}
	return attrs.Generation, nil
}

// limitedReader reads no faster than the limiter allows.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if b := r.l.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
