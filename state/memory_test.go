package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemory() })
}

// TestMemoryConcurrent lets writers of different partitions and a reader
// of the figures run at once (go test -race finds unguarded state).
func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	var wg sync.WaitGroup
	for p := range 4 {
		scope := Scope("chat", p)
		claim(t, m, scope, 1)
		wg.Go(func() {
			for off := range int64(200) {
				b := fullBatch(1, off)
				b.States = map[string][]byte{fmt.Sprint("c", off%7): []byte("x")}
				if _, err := m.Apply(ctx, scope, b); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if _, err := m.Figures(ctx, []string{"chat.0", "chat.1", "chat.2", "chat.3"}, func(string) string { return testDay }); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	f := figures(t, m, []string{"chat.0", "chat.1", "chat.2", "chat.3"})
	if got := f["s1"].Day["consulting"]; got != 800 {
		t.Fatalf("consulting after 4×200 batches = %d, want 800", got)
	}
}
