package ui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// cloneWizard adds a machine like another (confighelper "a"): source (a
// stopped node or a seed), name, role, memory and what to wire it to, with
// a preview of the configuration it will write.
type cloneWizard struct {
	m       *MainWindow
	source  *widget.Select
	name    *widget.Entry
	kind    *widget.Select
	memory  *widget.Entry
	wire    *widget.CheckGroup
	preview *widget.Label
	dlg     dialog.Dialog
}

func (m *MainWindow) showClone(source string) *cloneWizard {
	var sources, targets []string
	for _, n := range m.snapshot().Nodes {
		if !n.Embedded {
			sources = append(sources, n.Name)
		}
		if n.Kind != "cpu" {
			targets = append(targets, n.Name)
		}
	}
	for _, s := range app.SeedsFor(nil, "") {
		sources = append(sources, "seed:"+s)
	}
	w := &cloneWizard{
		m: m, name: widget.NewEntry(), memory: widget.NewEntry(),
		kind: widget.NewSelect(append([]string{""}, "cpu", "fossil", "fossil+auth", "auth", "venti"), nil),
		wire: widget.NewCheckGroup(targets, nil), preview: widget.NewLabel(""),
	}
	w.preview.TextStyle.Monospace = true
	w.name.SetPlaceHolder("automatic")
	w.memory.SetPlaceHolder("MiB (default: the seed's)")
	w.source = widget.NewSelect(sources, func(string) { w.onSourceChanged() })
	w.kind.OnChanged = func(string) { w.onChanged() }
	w.name.OnChanged = func(string) { w.onChanged() }
	w.memory.OnChanged = func(string) { w.onChanged() }
	w.wire.OnChanged = func([]string) { w.onChanged() }
	w.source.SetSelected(source)
	form := widget.NewForm(
		widget.NewFormItem("Source", w.source),
		widget.NewFormItem("Name", w.name),
		widget.NewFormItem("Role", w.kind),
		widget.NewFormItem("Memory", w.memory),
		widget.NewFormItem("Wire to", w.wire),
		widget.NewFormItem("Will write", w.preview),
	)
	w.dlg = dialog.NewCustomConfirm("Clone machine", "Clone", "Cancel", form, func(ok bool) {
		if ok {
			w.submit()
		}
	}, m.win)
	w.dlg.Resize(fyne.NewSize(620, 520))
	w.dlg.Show()
	return w
}

// onSourceChanged preselects the source's role and links.
func (w *cloneWizard) onSourceChanged() {
	if n, ok := w.m.snapshot().NodeByName(w.source.Selected); ok {
		w.kind.SetSelected(n.Kind)
		var linked []string
		for _, l := range w.m.snapshot().Links {
			if l.From == n.ID {
				if t, ok := w.m.snapshot().Node(l.To); ok {
					linked = append(linked, t.Name)
				}
			}
		}
		w.wire.SetSelected(linked)
	}
	w.onChanged()
}

// spec is what the form says.
func (w *cloneWizard) spec() (app.CloneSpec, error) {
	s := app.CloneSpec{Source: w.source.Selected, Name: strings.TrimSpace(w.name.Text), Kind: w.kind.Selected, WireTo: append([]string{}, w.wire.Selected...)}
	if t := strings.TrimSpace(w.memory.Text); t != "" {
		mb, err := strconv.Atoi(t)
		if err != nil || mb <= 0 {
			return s, fmt.Errorf("memory %q is not a number of MiB", t)
		}
		s.MemoryMB = mb
	}
	return s, nil
}

// onChanged recomputes the preview (on a copy of the grid: nothing changes).
func (w *cloneWizard) onChanged() {
	spec, err := w.spec()
	var cfg *app.NodeConfig
	if n, ok := w.m.snapshot().NodeByName(spec.Source); err == nil && ok && n.Up() {
		// Said before Clone is pressed; the engine refuses it too.
		err = fmt.Errorf("%s is %s: stop it first, its disk is copied while it is stopped", n.Name, n.State)
	}
	if err == nil {
		cfg, err = w.m.app.PreviewClone(w.m.ctx, spec)
	}
	if err != nil {
		w.preview.SetText("cannot clone: " + err.Error())
		return
	}
	w.preview.SetText(configText(cfg))
}

// configText shows a node configuration: plan9.ini keys, identity, config
// block lines.
func configText(c *app.NodeConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s, seed %s)\n", c.Name, c.Kind, c.Seed)
	for _, kv := range c.Ini {
		fmt.Fprintf(&b, "  plan9.ini %s=%s\n", kv.Key, kv.Value)
	}
	for _, k := range c.Owned {
		if _, ok := c.Value(k); !ok {
			fmt.Fprintf(&b, "  plan9.ini delete %s\n", k)
		}
	}
	if c.Identity != nil {
		fmt.Fprintf(&b, "  nvram %s@%s\n", c.Identity.AuthID, c.Identity.AuthDom)
	}
	for _, l := range c.FossilConfig {
		fmt.Fprintf(&b, "  fossil config: %s\n", l)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (w *cloneWizard) submit() {
	spec, err := w.spec()
	if err != nil {
		w.m.showError("Clone refused", err)
		return
	}
	var name string
	w.m.long("Cloning "+spec.Source, func(ctx context.Context, _ func(float64, string)) error {
		var err error
		name, err = w.m.app.Clone(ctx, spec)
		return err
	}, func() { w.m.say("added " + name) })
}
