package app

import (
	"context"
	"testing"
	"time"
)

func TestNotifierChangedLosesNoChange(t *testing.T) {
	var n Notifier
	ch := n.Changed()
	n.Notify()
	<-ch
	n.Notify() // nobody waiting: remembered
	select {
	case <-n.Changed():
	default:
		t.Fatal("a change between two waits was lost")
	}
	select {
	case <-n.Changed():
		t.Fatal("woken without a change")
	default:
	}
}

func TestNotifierSubscribe(t *testing.T) {
	var n Notifier
	n.Notify() // before subscribing: not reported
	ctx, cancel := context.WithCancel(context.Background())
	sub := n.Subscribe(ctx)
	select {
	case <-sub:
		t.Fatal("reported a change from before Subscribe")
	case <-time.After(20 * time.Millisecond):
	}
	n.Notify()
	n.Notify() // while nobody receives: merged, not lost
	<-sub
	n.Notify()
	select {
	case <-sub:
	case <-time.After(5 * time.Second):
		t.Fatal("change after the first was lost")
	}
	cancel()
	for range sub {
	}
}
