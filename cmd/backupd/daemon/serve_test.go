package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// acceptOne accepts on ln in the background; the connection (or error)
// comes on the channel.
func acceptOne(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// The limit listener accepts n connections at once; the next waits until
// one is closed (twice closed gives back one slot), and closing the
// listener ends the wait.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, buf := captureLog()
	ln := newLimitListener(inner, 2, "http", log)
	defer ln.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var accepted []net.Conn
	for range 2 {
		dial()
		select {
		case c := <-acceptOne(ln):
			accepted = append(accepted, c)
		case <-time.After(5 * time.Second):
			t.Fatal("a connection within the limit was not accepted")
		}
	}

	dial()
	third := acceptOne(ln)
	select {
	case c := <-third:
		t.Fatalf("a third connection was accepted over a limit of 2: %v", c)
	case <-time.After(200 * time.Millisecond):
	}
	// The warning is logged by the waiting Accept: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got := buf.String(); strings.Contains(got, "connection limit reached") && strings.Contains(got, "max_conns=2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning of the full listener:\n%s", buf.String())
		}
	}
	accepted[0].Close()
	accepted[0].Close() // a second close frees nothing more
	select {
	case c, ok := <-third:
		if !ok {
			t.Fatal("accept failed")
		}
		accepted[0] = c
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted once one closed")
	}

	// Full again: the wait ends when the listener closes.
	dial()
	fourth := acceptOne(ln)
	select {
	case <-fourth:
		t.Fatal("accepted over the limit after a double close")
	case <-time.After(200 * time.Millisecond):
	}
	ln.Close()
	select {
	case c, ok := <-fourth:
		if ok {
			t.Fatalf("accepted %v after close", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits after the listener closed")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after close: %v", err)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9464": true, "[::1]:9464": true, "localhost:9464": true, "127.3.4.5:1": true,
		"0.0.0.0:9464": false, ":9464": false, "[::]:9464": false, "10.0.0.1:9464": false, "metrics.example.com:9464": false, "bad": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestMetricsTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	c := MetricsConfig{Token: "inline"}
	if tok, err := c.token(); err != nil || tok != "inline" {
		t.Errorf("inline token: %q %v", tok, err)
	}
	c = MetricsConfig{TokenFile: path}
	if _, err := c.token(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: %v", err)
	}
	writeFile(t, path, " \n")
	if _, err := c.token(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	writeFile(t, path, "from-file\n")
	if tok, err := c.token(); err != nil || tok != "from-file" {
		t.Errorf("file token: %q %v", tok, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
