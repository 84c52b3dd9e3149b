// Package faultfs wraps an ingest.FS and injects the failures NFS shows:
// ESTALE, permission denied, files vanishing between listing and reading
// or in the middle of a read. Tests only.
package faultfs

import (
	"io/fs"
	"strings"
	"sync"

	"github.com/labplatform/platform/ingest"
)

// Op is the operation a fault applies to.
type Op string

const (
	OpReadDir Op = "readdir"
	OpStat    Op = "stat"
	OpOpen    Op = "open"
	// OpRead fails ReadAt calls that reach past AfterBytes.
	OpRead   Op = "read"
	OpRename Op = "rename"
)

// Fault makes operations Op on paths ending in Suffix fail with Err, Times
// times (0: until cleared). With a Hook instead of an Err, the operation
// runs Hook first and then proceeds (a robot acting mid-read).
type Fault struct {
	Op         Op
	Suffix     string
	Err        error
	Hook       func()
	Times      int
	AfterBytes int64
}

// FS is an ingest.FS with injected faults.
type FS struct {
	base   ingest.FS
	mu     sync.Mutex
	faults []*Fault
	hits   map[Op]int
}

// New wraps base.
func New(base ingest.FS) *FS { return &FS{base: base, hits: map[Op]int{}} }

// Inject adds a fault.
func (f *FS) Inject(flt Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &flt)
}

// Clear removes every fault.
func (f *FS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// Hits counts the faults that fired for op.
func (f *FS) Hits(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[op]
}

func (f *FS) fault(op Op, path string, off int64) error {
	hook, err := f.match(op, path, off)
	if hook != nil {
		hook()
	}
	return err
}

func (f *FS) match(op Op, path string, off int64) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, flt := range f.faults {
		if flt.Op != op || !strings.HasSuffix(path, flt.Suffix) || (op == OpRead && off < flt.AfterBytes) {
			continue
		}
		if flt.Times > 0 {
			flt.Times--
			if flt.Times == 0 {
				f.faults = append(f.faults[:i:i], f.faults[i+1:]...)
			}
		}
		f.hits[op]++
		if flt.Hook != nil {
			return flt.Hook, nil
		}
		return nil, &fs.PathError{Op: string(op), Path: path, Err: flt.Err}
	}
	return nil, nil
}

// ReadDir implements ingest.FS.
func (f *FS) ReadDir(dir string) ([]ingest.FileInfo, error) {
	if err := f.fault(OpReadDir, dir, 0); err != nil {
		return nil, err
	}
	return f.base.ReadDir(dir)
}

// Stat implements ingest.FS.
func (f *FS) Stat(name string) (ingest.FileInfo, error) {
	if err := f.fault(OpStat, name, 0); err != nil {
		return ingest.FileInfo{}, err
	}
	return f.base.Stat(name)
}

// Open implements ingest.FS.
func (f *FS) Open(name string) (ingest.File, error) {
	if err := f.fault(OpOpen, name, 0); err != nil {
		return nil, err
	}
	file, err := f.base.Open(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

// Rename implements ingest.FS.
func (f *FS) Rename(from, to string) error {
	if err := f.fault(OpRename, from, 0); err != nil {
		return err
	}
	return f.base.Rename(from, to)
}

type faultFile struct {
	ingest.File
	fs   *FS
	name string
}

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := ff.fs.fault(OpRead, ff.name, off+int64(len(p))); err != nil {
		return 0, err
	}
	return ff.File.ReadAt(p, off)
}
