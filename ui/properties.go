package ui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// propertiesDialog shows and edits a node: name, memory and IP editable;
// seed, identity and problems shown; plan9.ini with Gridlord's keys marked.
type propertiesDialog struct {
	m      *MainWindow
	node   string
	name   *widget.Entry
	memory *widget.Entry
	ip     *widget.Entry
	ini    *widget.Label
	dlg    dialog.Dialog
}

func (m *MainWindow) showProperties(node string) *propertiesDialog {
	n, _ := m.snapshot().NodeByName(node)
	p := &propertiesDialog{m: m, node: node, name: widget.NewEntry(), memory: widget.NewEntry(), ip: widget.NewEntry(), ini: widget.NewLabel("reading plan9.ini…")}
	p.name.SetText(n.Name)
	p.memory.SetText(strconv.Itoa(n.MemoryMB))
	p.ip.SetText(n.IP)
	p.ini.TextStyle.Monospace = true
	problems := strings.Join(n.Problems, "\n")
	if problems == "" {
		problems = "none"
	}
	form := widget.NewForm(
		widget.NewFormItem("Name", p.name),
		widget.NewFormItem("Kind", widget.NewLabel(n.Kind)),
		widget.NewFormItem("Seed", widget.NewLabel(n.Seed)),
		widget.NewFormItem("Memory (MiB)", p.memory),
		widget.NewFormItem("IP", p.ip),
		widget.NewFormItem("Identity", widget.NewLabel(n.User+"@"+n.AuthDom)),
		widget.NewFormItem("Problems", widget.NewLabel(problems)),
		widget.NewFormItem("plan9.ini", p.ini),
	)
	if n.Embedded {
		p.name.Disable()
		p.memory.Disable()
		p.ip.Disable()
	}
	p.dlg = dialog.NewCustomConfirm("Properties of "+node, "Apply", "Close", form, func(ok bool) {
		if ok {
			p.submit()
		}
	}, m.win)
	p.dlg.Resize(fyne.NewSize(560, 520))
	p.dlg.Show()
	if !n.Embedded {
		m.ops.Add(1)
		go func() {
			defer m.ops.Done()
			text := p.loadIni(m.ctx)
			p.m.ui(func() { p.ini.SetText(text) })
		}()
	} else {
		p.ini.SetText("(the embedded venti has no disk)")
	}
	return p
}

// loadIni reads the node's plan9.ini and marks the keys Gridlord owns
// with "●" (and wanted values that differ with the value it will write).
func (p *propertiesDialog) loadIni(ctx context.Context) string {
	ini, err := p.m.app.Ini(ctx, p.node)
	if err != nil {
		return "cannot read plan9.ini: " + err.Error()
	}
	cfg, err := p.m.app.Config(ctx, p.node)
	if err != nil {
		return string(ini)
	}
	return markIni(string(ini), cfg.Owned, cfg.Value)
}

// markIni prefixes lines whose key Gridlord owns with "● " and the others
// with two spaces; an owned key whose value will change gets "→ NEW".
func markIni(ini string, owned []string, want func(string) (string, bool)) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(ini, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if slices.Contains(owned, strings.TrimSpace(k)) {
			b.WriteString("● " + line)
			if w, ok := want(k); ok && w != v {
				fmt.Fprintf(&b, "   → %s", w)
			} else if !ok {
				b.WriteString("   → deleted")
			}
		} else {
			b.WriteString("  " + line)
		}
		b.WriteByte('\n')
	}
	b.WriteString("\n● = set by Gridlord from the grid's links")
	return b.String()
}

func (p *propertiesDialog) submit() {
	mb, err := strconv.Atoi(strings.TrimSpace(p.memory.Text))
	if err != nil {
		p.m.showError("Properties refused", fmt.Errorf("memory %q is not a number of MiB", p.memory.Text))
		return
	}
	props := app.Properties{Name: strings.TrimSpace(p.name.Text), MemoryMB: mb, IP: strings.TrimSpace(p.ip.Text)}
	p.m.do("change "+p.node, func(ctx context.Context) error { return p.m.app.SetProperties(ctx, p.node, props) })
}
