// Package smtptest is a small SMTP server on 127.0.0.1 for tests: a real
// SMTP conversation (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA) whose
// accepted e-mails the test reads back.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a small SMTP server on 127.0.0.1: EHLO, STARTTLS (when TLS is
// set), AUTH PLAIN (when User is set; it then requires it), MAIL, RCPT,
// DATA, RSET, NOOP, QUIT.
type Server struct {
	ln net.Listener
	// TLS, when set, offers STARTTLS with this configuration.
	TLS *tls.Config
	// User and Pass, when User is set, are the only credentials accepted,
	// and required before MAIL.
	User string
	Pass string
	// Answer returns the reply to the end of DATA of transaction n
	// (counting from 1); "" means 250.
	Answer func(n int) string

	mu           sync.Mutex
	transactions int // DATA commands whose data was received
	mailCommands int
	mails        []Mail
	conns        map[net.Conn]bool
	wg           sync.WaitGroup
}

// Mail is one accepted e-mail: its envelope, its data (headers and
// body), and whether it came over TLS and by which user.
type Mail struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
}

// Start starts s on a random port of 127.0.0.1 until the test ends.
func Start(t testing.TB, s *Server) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.conns = ln, map[net.Conn]bool{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Port returns the port s listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Stats returns the number of transactions and MAIL commands and the
// accepted e-mails.
func (s *Server) Stats() (transactions, mailCommands int, mails []Mail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transactions, s.mailCommands, append([]Mail(nil), s.mails...)
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(c)
	var (
		isTLS    bool
		user     string
		from     string
		to       []string
		reply    = func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
		greeting = reply("220 smtptest ESMTP")
	)
	if !greeting {
		return
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		ok := true
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			from, to = "", nil
			lines := []string{"smtptest", "8BITMIME"}
			if s.TLS != nil && !isTLS {
				lines = append(lines, "STARTTLS")
			}
			if s.User != "" && (isTLS || s.TLS == nil) {
				lines = append(lines, "AUTH PLAIN")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				if ok = reply("250%s%s", sep, l); !ok {
					break
				}
			}
		case "STARTTLS":
			if s.TLS == nil || isTLS {
				ok = reply("502 5.5.1 no STARTTLS here")
				break
			}
			if !reply("220 2.0.0 go ahead") {
				return
			}
			tc := tls.Server(c, s.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp, isTLS = tc, textproto.NewConn(tc), true
			from, to, user = "", nil, ""
		case "AUTH":
			mech, ir, _ := strings.Cut(arg, " ")
			dec, err := base64.StdEncoding.DecodeString(ir)
			parts := strings.Split(string(dec), "\x00")
			switch {
			case !strings.EqualFold(mech, "PLAIN"):
				ok = reply("504 5.5.4 only PLAIN")
			case err == nil && len(parts) == 3 && parts[1] == s.User && parts[2] == s.Pass:
				user = parts[1]
				ok = reply("235 2.7.0 authenticated")
			default:
				ok = reply("535 5.7.8 bad credentials")
			}
		case "MAIL":
			if s.User != "" && user == "" {
				ok = reply("530 5.7.0 authentication required")
				break
			}
			s.mu.Lock()
			s.mailCommands++
			s.mu.Unlock()
			from, to = between(arg), nil
			ok = reply("250 2.1.0 ok")
		case "RCPT":
			to = append(to, between(arg))
			ok = reply("250 2.1.5 ok")
		case "DATA":
			if from == "" || len(to) == 0 {
				ok = reply("503 5.5.1 MAIL and RCPT first")
				break
			}
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.transactions++
			n := s.transactions
			s.mu.Unlock()
			answer := "250 2.0.0 queued"
			if s.Answer != nil {
				if a := s.Answer(n); a != "" {
					answer = a
				}
			}
			if strings.HasPrefix(answer, "250") {
				s.mu.Lock()
				s.mails = append(s.mails, Mail{From: from, To: to, Data: data, TLS: isTLS, User: user})
				s.mu.Unlock()
			}
			from, to = "", nil
			ok = reply("%s", answer)
		case "RSET":
			from, to = "", nil
			ok = reply("250 2.0.0 ok")
		case "NOOP":
			ok = reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			ok = reply("502 5.5.2 unknown command")
		}
		if !ok {
			return
		}
	}
}

// between returns the text between < and > of a MAIL or RCPT argument.
func between(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

// SelfSigned returns a self-signed certificate for 127.0.0.1 and localhost
// and a pool that trusts it.
func SelfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}
