package domain

// Prepared is the part of checking a message of the ledger that depends
// on no other message: the hash of its body, whether its MAC holds for the
// key it names, and its decoding. Prepare makes it, from any goroutine and
// ahead of the check, so that a replay of the stream spreads over the
// cores; CheckPrepared then uses it in stream order. A nil *Prepared, or
// one only Hashed, does the rest of the work when asked.
type Prepared struct {
	Hash string
	body []byte

	macKeyID string // the key the MAC was checked with; "" if not checked
	macOK    bool

	env     *Envelope
	envErr  error
	envDone bool
	ev      Event
	evDone  bool
}

// Hashed starts the Prepared of m: the hash of its body, the rest done
// when the check asks or by Prepare.
func Hashed(m StoredMessage) *Prepared {
	return &Prepared{Hash: HashEvent(m.Body), body: m.Body}
}

// Prepare does the rest of the work of checking m, whose Prepared p is,
// that depends on no other message: its MAC under macKey (the check's,
// TrustMAC; nil if it trusts no MAC) and its decoding. A message whose
// decoding the caller already holds (its own) needs none of it.
func (p *Prepared) Prepare(m StoredMessage, macKey func(keyID string) []byte) {
	if macKey != nil && m.Token != KeysStream && m.MAC != "" && m.KeyID != "" {
		if mk := macKey(m.KeyID); mk != nil {
			p.macKeyID, p.macOK = m.KeyID, validMAC(mk, m.Body, m.MAC)
		}
	}
	if env, err := p.envelope(m.Body); err == nil && !isKeyType(env.Type) {
		p.event(env)
	}
}

// envelope is decodeEnvelope of body, once.
func (p *Prepared) envelope(body []byte) (*Envelope, error) {
	if p == nil {
		return decodeEnvelope(body)
	}
	if !p.envDone {
		p.env, p.envErr = decodeEnvelope(p.body)
		p.envDone = true
	}
	return p.env, p.envErr
}

// event is DecodeEvent of env, once for the prepared envelope.
func (p *Prepared) event(env *Envelope) Event {
	if p == nil || env != p.env {
		ev, _ := DecodeEvent(env)
		return ev
	}
	if !p.evDone {
		p.ev, _ = DecodeEvent(env)
		p.evDone = true
	}
	return p.ev
}

// validMAC is validMAC of the message's body and MAC with key mk of key
// id, checked once.
func (p *Prepared) validMAC(id string, mk []byte, m StoredMessage) bool {
	if p != nil && p.macKeyID == id {
		return p.macOK
	}
	return validMAC(mk, m.Body, m.MAC)
}

// CheckPrepared is Check of m with the work Prepare did for it.
func (c *LedgerCheck) CheckPrepared(m StoredMessage, p *Prepared) Verdict {
	return c.check(m, p.Hash, nil, p)
}
