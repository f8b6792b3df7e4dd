package archivetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/backupledger/backupledger/adapters/objectstore/archive"
)

// StreamVerdict runs the streamed pass of an upload over raw, fed in reads
// of at most step bytes, and returns its verdict.
func StreamVerdict(ctx context.Context, raw []byte, step int, lim archive.Limits) (archive.Manifest, error) {
	s := archive.NewStreamCheck(&steppedReader{b: raw, step: step}, lim)
	s.Run()
	return s.Verdict(ctx, int64(len(raw)))
}

type steppedReader struct {
	b    []byte
	step int
}

func (r *steppedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// StreamedAgrees runs the streamed pass over raw in reads of several sizes
// and checks that, when it decides, archive.Validate accepts raw with the
// same manifest. It reports whether the pass decided.
func StreamedAgrees(t testing.TB, raw []byte, lim archive.Limits) bool {
	t.Helper()
	decided := 0
	steps := []int{1 << 20, 4096, 7}
	if len(raw) > 1<<20 {
		steps = steps[:2]
	}
	for _, step := range steps {
		m, err := StreamVerdict(context.Background(), raw, step, lim)
		if err != nil {
			if !errors.Is(err, archive.ErrUndecided) {
				t.Fatalf("streamed pass (reads of %d) answered %v, not undecided", step, err)
			}
			continue
		}
		decided++
		want, err := archive.Validate(context.Background(), bytes.NewReader(raw), int64(len(raw)), lim)
		if err != nil {
			t.Fatalf("streamed pass accepted what ValidateArchive refuses: %v", err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("streamed pass read the manifest\n%+v\nValidateArchive\n%+v", m, want)
		}
	}
	if decided != 0 && decided != len(steps) {
		t.Fatalf("streamed pass decided for %d of %d read sizes", decided, len(steps))
	}
	return decided > 0
}
