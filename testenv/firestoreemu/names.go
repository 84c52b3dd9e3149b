package firestoreemu

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// docName is a parsed document name:
// projects/{project}/databases/{database}/documents/{collection}/{id}[/...].
type docName struct {
	full     string // the whole name
	root     string // projects/{p}/databases/{d}/documents
	collPath string // full name of the parent collection
	id       string // last segment
}

// parseDatabase validates "projects/{p}/databases/{d}" and returns it.
func parseDatabase(db string) (string, error) {
	parts := strings.Split(db, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "databases" || parts[1] == "" || parts[3] == "" {
		return "", fmt.Errorf("invalid database name %q", db)
	}
	return db, nil
}

// parseDocName validates a full document name.
func parseDocName(name string) (docName, error) {
	root, rel, err := splitRoot(name)
	if err != nil {
		return docName{}, err
	}
	segs := strings.Split(rel, "/")
	if len(segs) < 2 || len(segs)%2 != 0 {
		return docName{}, fmt.Errorf("%q is not a document name: it must have an even number of path segments", name)
	}
	if err := validateSegments(segs); err != nil {
		return docName{}, fmt.Errorf("document name %q: %w", name, err)
	}
	if len(name) > 6144 {
		return docName{}, fmt.Errorf("document name %q is longer than 6 KiB", name)
	}
	i := strings.LastIndexByte(name, '/')
	return docName{full: name, root: root, collPath: name[:i], id: name[i+1:]}, nil
}

// parseParent validates a parent for queries and listings: the database's
// documents root or a document name. It returns the parent and the root.
func parseParent(parent string) (string, string, error) {
	if strings.HasSuffix(parent, "/documents") {
		db := strings.TrimSuffix(parent, "/documents")
		if _, err := parseDatabase(db); err != nil {
			return "", "", fmt.Errorf("invalid parent %q: %w", parent, err)
		}
		return parent, parent, nil
	}
	d, err := parseDocName(parent)
	if err != nil {
		return "", "", fmt.Errorf("invalid parent: %w", err)
	}
	return parent, d.root, nil
}

func splitRoot(name string) (root, rel string, err error) {
	parts := strings.SplitN(name, "/", 6)
	if len(parts) < 6 || parts[0] != "projects" || parts[2] != "databases" || parts[4] != "documents" || parts[1] == "" || parts[3] == "" {
		return "", "", fmt.Errorf("invalid document name %q: want projects/{project}/databases/{database}/documents/{path}", name)
	}
	return strings.Join(parts[:5], "/"), parts[5], nil
}

// validateSegments applies Firestore's rules for collection and document IDs.
func validateSegments(segs []string) error {
	for _, s := range segs {
		if err := validateID(s); err != nil {
			return err
		}
	}
	return nil
}

func validateID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty path segment")
	case s == "." || s == "..":
		return fmt.Errorf("path segment %q is not allowed", s)
	case len(s) > 1500:
		return fmt.Errorf("path segment longer than 1500 bytes")
	case strings.HasPrefix(s, "__") && strings.HasSuffix(s, "__") && len(s) >= 4:
		return fmt.Errorf("path segment %q matches the reserved pattern __.*__", s)
	case !utf8.ValidString(s):
		return fmt.Errorf("path segment %q is not valid UTF-8", s)
	case strings.Contains(s, "/"):
		return fmt.Errorf("path segment %q contains '/'", s)
	}
	return nil
}
