package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Checkpoint is the shipper's local record of what GCS has confirmed, in a
// bbolt file. Every write is one fsynced transaction, so a crash leaves
// either the state before or after it. Intents (the object name a file or
// chunk will be uploaded under) are written before an upload and replaced
// by a confirmed record after GCS confirms it: a restart reuses the same
// name, so its upload meets ifGenerationMatch=0 and cannot add a second
// object.
type Checkpoint struct {
	db *bolt.DB
}

var (
	bucketFiles  = []byte("files")
	bucketHashes = []byte("hashes")
	bucketDBs    = []byte("dbs")
)

// FileRecord is the state of one export file, keyed <robot>/<name>.
type FileRecord struct {
	// Object is the raw object name: chosen at the first attempt, reused by
	// every retry.
	Object  string    `json:"object"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
	CRC32C  uint32    `json:"crc32c"`
	// Done is set once GCS confirmed Object with this content.
	Done bool `json:"done"`
	// Generation of Object; 0 while pending.
	Generation int64 `json:"generation,omitempty"`
	// Deduplicated: the content was already in Object, shipped for another
	// file; nothing was uploaded for this one.
	Deduplicated bool      `json:"deduplicated,omitempty"`
	ShippedAt    time.Time `json:"shipped_at,omitzero"`
	Archived     bool      `json:"archived,omitempty"`
}

// HashRecord maps a content hash to the object holding that content.
type HashRecord struct {
	Object string `json:"object"`
	Key    string `json:"key"`
	Done   bool   `json:"done"`
}

// DBRecord is the shipping state of one append-only database, keyed
// <robot>/<file>.
type DBRecord struct {
	// Gen counts series of this database; Series names the current one.
	Gen    int    `json:"gen"`
	Series string `json:"series"`
	// ID is the identity of the file generation the series reads.
	ID FileID `json:"id"`
	// Header is the series' header line, newline included; empty until the
	// file has one.
	Header []byte `json:"header,omitempty"`
	// Offset: bytes [0, Offset) of this generation are shipped (or are the
	// header).
	Offset int64 `json:"offset"`
	// Tail is the last bytes before Offset: if the file no longer has them
	// there, it was truncated and rewritten (even past Offset).
	Tail []byte `json:"tail,omitempty"`
	// Pending is the chunk being uploaded, if any.
	Pending *ChunkIntent `json:"pending,omitempty"`
	// LastObject and ShippedAt describe the last confirmed chunk.
	LastObject string    `json:"last_object,omitempty"`
	ShippedAt  time.Time `json:"shipped_at,omitzero"`
	// ModTime is the mtime of the file when the last chunk was cut.
	ModTime time.Time `json:"mtime,omitzero"`
}

// ChunkIntent is a chunk whose upload started and was not yet confirmed.
type ChunkIntent struct {
	Object string `json:"object"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
}

// CheckpointOptions are optional settings of OpenCheckpoint.
type CheckpointOptions struct {
	// ReadOnly opens a shared lock, for status; it waits at most Timeout
	// for a running ingest to release the file.
	ReadOnly bool
	Timeout  time.Duration
}

// OpenCheckpoint opens (creating if needed) the checkpoint at path.
func OpenCheckpoint(path string, opts CheckpointOptions) (*Checkpoint, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	if !opts.ReadOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketFiles, bucketHashes, bucketDBs} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("init checkpoint %s: %w", path, err)
		}
	}
	return &Checkpoint{db: db}, nil
}

// Close closes the file.
func (c *Checkpoint) Close() error { return c.db.Close() }

func get[T any](tx *bolt.Tx, bucket []byte, key string) (T, bool, error) {
	var v T
	b := tx.Bucket(bucket)
	if b == nil {
		return v, false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("checkpoint %s/%s: %w", bucket, key, err)
	}
	return v, true, nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("checkpoint %s/%s: %w", bucket, key, err)
	}
	return tx.Bucket(bucket).Put([]byte(key), raw)
}

func view[T any](c *Checkpoint, bucket []byte, key string) (T, bool, error) {
	var (
		v  T
		ok bool
	)
	err := c.db.View(func(tx *bolt.Tx) error {
		var err error
		v, ok, err = get[T](tx, bucket, key)
		return err
	})
	return v, ok, err
}

// File returns the record of the file key, if any.
func (c *Checkpoint) File(key string) (FileRecord, bool, error) {
	return view[FileRecord](c, bucketFiles, key)
}

// Hash returns what holds the content with this sha256, if anything.
func (c *Checkpoint) Hash(sha string) (HashRecord, bool, error) {
	return view[HashRecord](c, bucketHashes, sha)
}

// DB returns the state of database key, if any.
func (c *Checkpoint) DB(key string) (DBRecord, bool, error) {
	return view[DBRecord](c, bucketDBs, key)
}

// Intend records that file key is about to be uploaded as rec.Object
// (rec.Done false), and claims its content hash for it.
func (c *Checkpoint) Intend(key string, rec FileRecord) error {
	if rec.Done {
		return errors.New("checkpoint: an intent cannot be done")
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketFiles, key, rec); err != nil {
			return err
		}
		return put(tx, bucketHashes, rec.SHA256, HashRecord{Object: rec.Object, Key: key})
	})
}

// Commit records that GCS confirmed rec.Object with rec's content (or that
// the content already was there), in one transaction with its hash.
func (c *Checkpoint) Commit(key string, rec FileRecord) error {
	rec.Done = true
	return c.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, bucketFiles, key, rec); err != nil {
			return err
		}
		return put(tx, bucketHashes, rec.SHA256, HashRecord{Object: rec.Object, Key: key, Done: true})
	})
}

// PutDB stores the state of database key.
func (c *Checkpoint) PutDB(key string, rec DBRecord) error {
	return c.db.Update(func(tx *bolt.Tx) error { return put(tx, bucketDBs, key, rec) })
}

// Files returns every file record whose key starts with prefix.
func (c *Checkpoint) Files(prefix string) (map[string]FileRecord, error) {
	return scan[FileRecord](c, bucketFiles, prefix)
}

// DBs returns every database state whose key starts with prefix.
func (c *Checkpoint) DBs(prefix string) (map[string]DBRecord, error) {
	return scan[DBRecord](c, bucketDBs, prefix)
}

func scan[T any](c *Checkpoint, bucket []byte, prefix string) (map[string]T, error) {
	out := map[string]T{}
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		for k, v := cur.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = cur.Next() {
			var rec T
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("checkpoint %s/%s: %w", bucket, k, err)
			}
			out[string(k)] = rec
		}
		return nil
	})
	return out, err
}
