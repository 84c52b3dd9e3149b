package ingest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// FS is what the shipper reads export folders through. It is declared here,
// where it is consumed, so that tests can put a fault-injecting
// implementation in front of the local one; OS is the production one.
// Paths are operating-system paths. Errors keep their cause for errors.Is
// (fs.ErrNotExist, fs.ErrPermission, syscall.ESTALE, ...).
type FS interface {
	// ReadDir lists a directory, without following symbolic links.
	ReadDir(dir string) ([]FileInfo, error)
	// Stat describes one file.
	Stat(name string) (FileInfo, error)
	// Open opens a file for reading.
	Open(name string) (File, error)
	// Rename moves a file, creating the target's directory (archive moves).
	Rename(from, to string) error
}

// File is an open file: read at any offset, and describe it through the
// open handle (so a rename or replacement of the path does not change what
// it describes).
type File interface {
	io.ReaderAt
	io.Closer
	Stat() (FileInfo, error)
}

// FileID identifies a file independently of its name: device and inode.
// A rotation (rename and recreate) changes it; an append does not.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// FileInfo describes a file.
type FileInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
	Dir     bool
	// Regular is false for directories, links, devices and pipes.
	Regular bool
	ID      FileID
}

// OS is the FS of the local operating system (NFS mounts included).
type OS struct{}

var _ FS = OS{}

func infoOf(fi fs.FileInfo) FileInfo {
	info := FileInfo{
		Name:    fi.Name(),
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		Dir:     fi.IsDir(),
		Regular: fi.Mode().IsRegular(),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.ID = FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)} //nolint:unconvert // types differ by platform
	}
	return info
}

// ReadDir implements FS. Entries that vanish between listing and stat are
// left out.
func (OS) ReadDir(dir string) ([]FileInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	infos := make([]FileInfo, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat %s in %s: %w", e.Name(), dir, err)
		}
		infos = append(infos, infoOf(fi))
	}
	return infos, nil
}

// Stat implements FS.
func (OS) Stat(name string) (FileInfo, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return FileInfo{}, err
	}
	return infoOf(fi), nil
}

// Open implements FS.
func (OS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Rename implements FS.
func (OS) Rename(from, to string) error {
	if err := os.MkdirAll(dirOf(to), 0o755); err != nil {
		return err
	}
	return os.Rename(from, to)
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if os.IsPathSeparator(p[i]) {
			return p[:i]
		}
	}
	return "."
}

type osFile struct{ *os.File }

func (f osFile) Stat() (FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return FileInfo{}, err
	}
	return infoOf(fi), nil
}
