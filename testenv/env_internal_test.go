package testenv

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogWriterRaisesLostNotifications(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	w.Write([]byte("127.0.0.1 - - \"GET /storage/v1/b HTTP/1.1\" 200\n"))
	w.Write([]byte("error publishing event: rpc error: code = NotFound\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[1], "level=ERROR") {
		t.Errorf("log lines = %q, want the access line at DEBUG and the publish failure at ERROR", lines)
	}
}
