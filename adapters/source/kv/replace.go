package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/backupledger/backupledger/domain"
)

// Replace implements service.Replacer: afterwards app holds exactly the
// documents that items emits, and every other key under the app's prefix is
// deleted (a delete marker, as DeleteDoc leaves). items is called once and
// calls emit for each item, one at a time; emit reads the item's Body to
// its end before it returns. Item.Component must be "config" or empty,
// Item.Path a document key as Export emits it, and Item.Size the body's
// length (negative: not checked).
//
// Replace reads and checks every item before it writes anything, holding
// the documents in memory, at most Config.MaxReplaceDocs of them and
// Config.MaxReplaceBytes of keys and values together. Then it puts every
// document (overwriting the one there) and deletes the app's keys that are
// not among them. The bucket has no transaction across keys: a failure
// while writing leaves some documents new and some old, and a retry of
// Replace with the same items makes the app right. Replacing twice with the
// same items gives the same documents. Writers of the app's keys (through
// this package or directly) must stay away while it runs: what they write
// may be overwritten, deleted or kept.
//
// It returns an *domain.Error with CodeInvalidArgument, having changed
// nothing, for a bad app id and for an item with another component, a key
// that PutDoc refuses, a key emitted twice, a body over Config.MaxValueBytes
// or of another length than its Size, or more items than the limits allow;
// the error of items, or of emit that items dropped, having changed
// nothing; an error wrapping the body's error when a body cannot be read;
// ctx's error when ctx ends; and the bucket's errors.
func (s *Source) Replace(ctx context.Context, app string, items func(emit func(domain.Item) error) error) error {
	if err := domain.ValidateAppID(app); err != nil {
		return err
	}
	b := &replaceBuffer{ctx: ctx, s: s, app: app, seen: make(map[string]struct{})}
	err := items(b.emit)
	b.done = true
	if err == nil {
		err = b.err // dropped by items
	}
	if err != nil {
		return err
	}
	for _, d := range b.docs {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := app + "." + d.key
		if _, err := s.put(ctx, k, d.value); err != nil {
			return fmt.Errorf("replace app %s: put config %s: %w", app, k, err)
		}
	}
	keys, err := s.keys(ctx, app)
	if err != nil {
		return fmt.Errorf("replace app %s: %w", app, err)
	}
	for _, key := range keys {
		if _, keep := b.seen[key]; keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		k := app + "." + key
		if err := s.delete(ctx, k); err != nil {
			return fmt.Errorf("replace app %s: delete config %s: %w", app, k, err)
		}
	}
	return nil
}

// replaceDoc is one document that a Replace writes.
type replaceDoc struct {
	key   string
	value []byte
}

// replaceBuffer collects and checks the items of a Replace.
type replaceBuffer struct {
	ctx   context.Context
	s     *Source
	app   string
	docs  []replaceDoc
	seen  map[string]struct{}
	bytes int64
	err   error // the first error of emit; every later call returns it
	done  bool
}

func (b *replaceBuffer) emit(it domain.Item) error {
	if b.err != nil {
		return b.err
	}
	if b.done {
		return errors.New("kv replace: emit called after items returned")
	}
	b.err = b.add(it)
	return b.err
}

// add checks it, reads its body and keeps it.
func (b *replaceBuffer) add(it domain.Item) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if it.Component != "" && it.Component != domain.ComponentConfig {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: component %q; the kv source imports %q only", it.Path, it.Component, domain.ComponentConfig)
	}
	key := it.Path
	if _, err := kvKey(b.app, key); err != nil {
		return err
	}
	if _, dup := b.seen[key]; dup {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: emitted twice", key)
	}
	if len(b.docs) >= b.s.maxDocs {
		return domain.Errorf(domain.CodeInvalidArgument, "more than %d documents; the kv source replaces at most that many at once", b.s.maxDocs)
	}
	limit := int64(b.s.maxValue)
	if it.Size > limit {
		return domain.Errorf(domain.CodeInvalidArgument, "item %q is %d bytes; the limit is %d", key, it.Size, limit)
	}
	if it.Size >= 0 && b.bytes+int64(len(key))+it.Size > b.s.maxBufBytes {
		return b.tooMuch()
	}
	var value []byte
	if it.Body != nil {
		buf := bytes.NewBuffer(make([]byte, 0, max(it.Size, 0)+bytes.MinRead))
		if _, err := buf.ReadFrom(io.LimitReader(it.Body, limit+1)); err != nil {
			return fmt.Errorf("item %q: read: %w", key, err)
		}
		value = buf.Bytes()
	}
	n := int64(len(value))
	switch {
	case n > limit:
		return domain.Errorf(domain.CodeInvalidArgument, "item %q is more than %d bytes; the limit is %d", key, limit, limit)
	case it.Size >= 0 && n != it.Size:
		return domain.Errorf(domain.CodeInvalidArgument, "item %q: announced %d bytes but its body has %d", key, it.Size, n)
	case b.bytes+int64(len(key))+n > b.s.maxBufBytes:
		return b.tooMuch()
	}
	b.bytes += int64(len(key)) + n
	b.seen[key] = struct{}{}
	b.docs = append(b.docs, replaceDoc{key: key, value: value})
	return nil
}

func (b *replaceBuffer) tooMuch() error {
	return domain.Errorf(domain.CodeInvalidArgument, "more than %d bytes of keys and values; the kv source replaces at most that much at once", b.s.maxBufBytes)
}

// put writes k within the call timeout.
func (s *Source) put(ctx context.Context, k string, value []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.call)
	defer cancel()
	return s.kv.Put(ctx, k, value)
}

// delete deletes k within the call timeout.
func (s *Source) delete(ctx context.Context, k string) error {
	ctx, cancel := context.WithTimeout(ctx, s.call)
	defer cancel()
	return s.kv.Delete(ctx, k)
}
