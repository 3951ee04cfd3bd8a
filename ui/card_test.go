package ui

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"gridlord/app"
)

// TestCardMarkup pins how a card draws each state (golden files in
// testdata/card; fyne writes differences to testdata/failed).
func TestCardMarkup(t *testing.T) {
	test.NewTempApp(t)
	c := NewGridCanvas()
	for name, v := range map[string]app.NodeView{
		"cpu_running_pending": {ID: "a", Name: "cpu1", Kind: "cpu", IP: "10.0.9.11", State: "running", Pending: true},
		"cpu_stopped":         {ID: "d", Name: "cpu1", Kind: "cpu", IP: "10.0.9.11", State: "stopped"},
		"fossil_running":      {ID: "b", Name: "fossil1", Kind: "fossil+auth", IP: "10.0.9.10", State: "running"},
		"venti_problem":       {ID: "c", Name: "venti", Kind: "venti", IP: "10.0.9.254", State: "running", Problems: []string{"x"}},
	} {
		t.Run(name, func(t *testing.T) {
			card := newNodeCard(c, v.ID)
			card.set(v, 1)
			w := test.NewTempWindow(t, card)
			w.Resize(fyne.NewSize(200, 100))
			test.AssertObjectRendersToMarkup(t, "card/"+name+".xml", card)
		})
	}
}
