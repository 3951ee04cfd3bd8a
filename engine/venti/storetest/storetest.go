// Package storetest is the conformance suite every venti.Store runs: the
// memory store, the embedded disk store and the protocol client.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"gridlord/engine/venti"
)

// Test runs the conformance suite against stores made by newStore. Each
// subtest gets a fresh, empty store.
func Test(t *testing.T, newStore func(t *testing.T) venti.Store) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		st := newStore(t)
		for _, ty := range []venti.Type{venti.DataType, venti.DirType, venti.RootType, venti.PointerType0, venti.PointerType6} {
			data := []byte(fmt.Sprintf("block of type %v", ty))
			s, err := st.Write(ctx, ty, data)
			if err != nil {
				t.Fatalf("write %v: %v", ty, err)
			}
			if s != venti.Sum(data) {
				t.Fatalf("write %v: score %v, want %v", ty, s, venti.Sum(data))
			}
			got, err := st.Read(ctx, s, ty, venti.MaxBlock)
			if err != nil {
				t.Fatalf("read %v: %v", ty, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %v: got %q, want %q", ty, got, data)
			}
		}
	})
	t.Run("ReadRefNoWait", func(t *testing.T) {
		st := newStore(t)
		nw, ok := st.(venti.ReaderNoWait)
		if !ok {
			t.Skipf("%T does not implement venti.ReaderNoWait", st)
		}
		var ws []venti.Score
		var blocks [][]byte
		rnd := rand.NewChaCha8([32]byte{7})
		served := 0
		for i := 0; i < 20; i++ {
			// Random bytes: a store that compresses keeps them raw.
			data := make([]byte, 1+i*800)
			rnd.Read(data)
			s, err := st.Write(ctx, venti.DataType, data)
			if err != nil {
				t.Fatal(err)
			}
			ws, blocks = append(ws, s), append(blocks, data)
		}
		if sy, ok := st.(venti.Syncer); ok {
			if err := sy.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range ws {
			d, rel, ok := nw.ReadRefNoWait(s, venti.DataType, venti.MaxBlock)
			if !ok {
				if d != nil || rel != nil {
					t.Fatalf("block %d: not served, but data or a release", i)
				}
				continue
			}
			if !bytes.Equal(d, blocks[i]) || rel == nil {
				t.Fatalf("block %d: equal %v, release %v", i, bytes.Equal(d, blocks[i]), rel != nil)
			}
			rel()
			served++
			if _, _, ok := nw.ReadRefNoWait(s, venti.DataType, len(blocks[i])-1); ok {
				t.Fatalf("block %d: served with a max below its size", i)
			}
			if _, _, ok := nw.ReadRefNoWait(s, venti.DirType, venti.MaxBlock); ok {
				t.Fatalf("block %d: served as another type", i)
			}
		}
		t.Logf("%d of %d blocks served without waiting", served, len(ws))
		if _, _, ok := nw.ReadRefNoWait(venti.Sum([]byte("never written")), venti.DataType, venti.MaxBlock); ok {
			t.Fatal("a missing block was served")
		}
		if _, _, ok := nw.ReadRefNoWait(venti.ZeroScore, venti.DataType, venti.MaxBlock); ok {
			t.Fatal("the zero score was served")
		}
	})
	t.Run("TypeIsPartOfKey", func(t *testing.T) {
		st := newStore(t)
		s, err := st.Write(ctx, venti.DataType, []byte("typed"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Read(ctx, s, venti.DirType, venti.MaxBlock); !errors.Is(err, venti.ErrNotFound) {
			t.Fatalf("read with other type: err %v, want ErrNotFound", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		st := newStore(t)
		_, err := st.Read(ctx, venti.Sum([]byte("never written")), venti.DataType, venti.MaxBlock)
		if !errors.Is(err, venti.ErrNotFound) {
			t.Fatalf("read missing: err %v, want ErrNotFound", err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		st := newStore(t)
		s, err := st.Write(ctx, venti.DataType, nil)
		if err != nil || s != venti.ZeroScore {
			t.Fatalf("empty write: %v %v, want zero score", s, err)
		}
		got, err := st.Read(ctx, venti.ZeroScore, venti.DataType, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("read zero score: %q %v, want empty", got, err)
		}
	})
	t.Run("MaxBlock", func(t *testing.T) {
		st := newStore(t)
		big := bytes.Repeat([]byte{7}, venti.MaxBlock)
		s, err := st.Write(ctx, venti.DataType, big)
		if err != nil {
			t.Fatalf("write max block: %v", err)
		}
		if _, err := st.Read(ctx, s, venti.DataType, venti.MaxBlock-1); err == nil {
			t.Fatal("read with a too-small count succeeded")
		}
		got, err := st.Read(ctx, s, venti.DataType, venti.MaxBlock)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("read max block: %v", err)
		}
		if _, err := st.Write(ctx, venti.DataType, append(big, 1)); err == nil {
			t.Fatal("write of MaxBlock+1 bytes succeeded")
		}
	})
	t.Run("BadType", func(t *testing.T) {
		st := newStore(t)
		for _, ty := range []venti.Type{0, 10, 12, 14, 255} {
			if _, err := st.Write(ctx, ty, []byte("x")); err == nil {
				t.Errorf("write with type %d succeeded", ty)
			}
		}
	})
	t.Run("Duplicate", func(t *testing.T) {
		st := newStore(t)
		for i := 0; i < 3; i++ {
			if _, err := st.Write(ctx, venti.DataType, []byte("again")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		st := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					data := []byte(fmt.Sprintf("goroutine %d block %d", g, i))
					s, err := st.Write(ctx, venti.DataType, data)
					if err == nil {
						var got []byte
						got, err = st.Read(ctx, s, venti.DataType, venti.MaxBlock)
						if err == nil && !bytes.Equal(got, data) {
							err = fmt.Errorf("read back %q, want %q", got, data)
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
