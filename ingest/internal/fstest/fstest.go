// Package fstest is the conformance suite of ingest.FS: every
// implementation (the local one, the fault-injecting one) runs it, so the
// shipper can rely on the same behaviour from each.
package fstest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/labplatform/platform/ingest"
)

// Run runs the suite. newFS returns the FS under test and an empty
// directory it sees, which the suite writes through the os package.
func Run(t *testing.T, newFS func(t *testing.T) (ingest.FS, string)) {
	t.Run("ReadDirListsFilesAndDirs", func(t *testing.T) {
		fsys, dir := newFS(t)
		write(t, filepath.Join(dir, "a.csv"), "h\n1\n")
		mkdir(t, filepath.Join(dir, "db"))
		infos, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]ingest.FileInfo{}
		for _, fi := range infos {
			got[fi.Name] = fi
		}
		if fi := got["a.csv"]; !fi.Regular || fi.Dir || fi.Size != 4 || fi.ModTime.IsZero() || fi.ID == (ingest.FileID{}) {
			t.Errorf("a.csv: %+v, want a regular file of 4 bytes with mtime and identity", fi)
		}
		if fi := got["db"]; !fi.Dir || fi.Regular {
			t.Errorf("db: %+v, want a directory", fi)
		}
		if len(got) != 2 {
			t.Errorf("ReadDir: %d entries, want 2", len(got))
		}
	})
	t.Run("MissingIsErrNotExist", func(t *testing.T) {
		fsys, dir := newFS(t)
		missing := filepath.Join(dir, "missing.csv")
		if _, err := fsys.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat: %v, want fs.ErrNotExist", err)
		}
		if _, err := fsys.Open(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open: %v, want fs.ErrNotExist", err)
		}
		if _, err := fsys.ReadDir(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadDir: %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("ReadAtAndShortRead", func(t *testing.T) {
		fsys, dir := newFS(t)
		p := filepath.Join(dir, "f")
		write(t, p, "0123456789")
		f, err := fsys.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4)
		if n, err := f.ReadAt(buf, 3); n != 4 || err != nil || string(buf) != "3456" {
			t.Errorf("ReadAt(4 at 3) = %d %v %q, want 4 nil 3456", n, err, buf)
		}
		if n, err := f.ReadAt(buf, 8); n != 2 || !errors.Is(err, io.EOF) {
			t.Errorf("ReadAt(4 at 8) = %d %v, want 2 io.EOF", n, err)
		}
	})
	t.Run("IdentityFollowsTheFileNotTheName", func(t *testing.T) {
		fsys, dir := newFS(t)
		p := filepath.Join(dir, "results.db.csv")
		write(t, p, "h\n")
		first, err := fsys.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		appendTo(t, p, "1\n")
		grown, err := fsys.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if grown.ID != first.ID || grown.Size != 4 {
			t.Errorf("after append: %+v, want same identity as %+v and 4 bytes", grown, first)
		}
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
		write(t, p, "h\n")
		rotated, err := fsys.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if rotated.ID == first.ID {
			t.Error("a new file under the old name kept the old identity")
		}
		moved, err := fsys.Stat(p + ".1")
		if err != nil {
			t.Fatal(err)
		}
		if moved.ID != first.ID {
			t.Error("the rotated file lost its identity")
		}
		viaHandle, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if viaHandle.ID != first.ID || viaHandle.Size != 4 {
			t.Errorf("open handle after rotation: %+v, want the old file", viaHandle)
		}
	})
	t.Run("RenameCreatesTargetDir", func(t *testing.T) {
		fsys, dir := newFS(t)
		p := filepath.Join(dir, "a.csv")
		write(t, p, "x")
		to := filepath.Join(dir, "archive", "R001", "a.csv")
		if err := fsys.Rename(p, to); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("source after rename: %v, want fs.ErrNotExist", err)
		}
		if fi, err := fsys.Stat(to); err != nil || fi.Size != 1 {
			t.Errorf("target after rename: %+v %v", fi, err)
		}
	})
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
