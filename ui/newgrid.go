package ui

import (
	"context"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
	"gridlord/images"
)

// newGridWizard creates a grid: seed (catalog or a local image file), auth
// domain, host owner and directory; then opens it.
type newGridWizard struct {
	m       *MainWindow
	dir     *widget.Entry
	seed    *widget.Select
	file    *widget.Entry
	authDom *widget.Entry
	user    *widget.Entry
	dlg     dialog.Dialog
}

func (m *MainWindow) onNewGrid() { m.showNewGrid() }

// showNewGrid opens the New grid wizard.
func (m *MainWindow) showNewGrid() *newGridWizard {
	w := &newGridWizard{
		m:       m,
		dir:     widget.NewEntry(),
		seed:    widget.NewSelect(app.SeedsFor(nil, "cpu"), nil),
		file:    widget.NewEntry(),
		authDom: widget.NewEntry(),
		user:    widget.NewEntry(),
	}
	if m.snapshot().Dir != "" {
		w.dir.SetText(filepath.Join(filepath.Dir(m.snapshot().Dir), "grid2"))
	}
	w.seed.SetSelected(app.DefaultSeed)
	w.file.SetPlaceHolder("optional: a local .qcow2 or raw image instead")
	w.authDom.SetText(app.DefaultAuthDom)
	w.user.SetText(app.DefaultUser)
	browse := widget.NewButton("Choose file…", func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err == nil && r != nil {
				w.file.SetText(r.URI().Path())
				r.Close()
			}
		}, m.win)
	})
	form := widget.NewForm(
		widget.NewFormItem("Directory", w.dir),
		widget.NewFormItem("Seed", w.seed),
		widget.NewFormItem("Image file", w.file),
		widget.NewFormItem("", browse),
		widget.NewFormItem("Auth domain", w.authDom),
		widget.NewFormItem("Host owner", w.user),
	)
	w.dlg = dialog.NewCustomConfirm("New grid", "Create", "Cancel", form, func(ok bool) {
		if ok {
			w.submit()
		}
	}, m.win)
	w.dlg.Resize(fyne.NewSize(560, 380))
	w.dlg.Show()
	return w
}

// submit creates the grid and opens it; the grid's engine stores a local
// image in the grid's venti first (a long step, so with a progress bar
// and Cancel).
func (w *newGridWizard) submit() {
	spec := app.NewGridSpec{Dir: w.dir.Text, Seed: w.seed.Selected, Image: w.file.Text, AuthDom: w.authDom.Text, User: w.user.Text}
	w.m.long("Creating grid "+filepath.Base(spec.Dir), func(ctx context.Context, _ func(float64, string)) error {
		return w.m.app.NewGrid(ctx, spec)
	}, func() { w.m.say("created and opened grid " + spec.Dir) })
}

// openGrid asks for a grid directory and opens it.
func (m *MainWindow) onOpenGrid() {
	dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil || u == nil {
			return
		}
		m.openGridDir(u.Path())
	}, m.win)
}

// openGridDir opens the grid in dir.
func (m *MainWindow) openGridDir(dir string) {
	m.long("Opening grid "+filepath.Base(dir), func(ctx context.Context, _ func(float64, string)) error {
		return m.app.OpenGrid(ctx, dir)
	}, func() { m.say("opened grid " + dir) })
}

// addNodeWizard adds a node of a kind from a seed.
type addNodeWizard struct {
	m    *MainWindow
	kind *widget.Select
	seed *widget.Select
	name *widget.Entry
	dlg  dialog.Dialog
}

func (m *MainWindow) onAddNode() { m.showAddNode() }

func (m *MainWindow) showAddNode() *addNodeWizard {
	w := &addNodeWizard{m: m, seed: widget.NewSelect(nil, nil), name: widget.NewEntry()}
	w.name.SetPlaceHolder("automatic (cpu2, fossil2, …)")
	w.kind = widget.NewSelect(images.Roles(), func(k string) {
		w.seed.Options = app.SeedsFor(nil, k)
		if len(w.seed.Options) > 0 {
			w.seed.SetSelected(w.seed.Options[0])
		} else {
			w.seed.ClearSelected()
		}
		w.seed.Refresh()
	})
	w.kind.SetSelected("cpu")
	form := widget.NewForm(
		widget.NewFormItem("Kind", w.kind),
		widget.NewFormItem("Seed", w.seed),
		widget.NewFormItem("Name", w.name),
	)
	w.dlg = dialog.NewCustomConfirm("Add node", "Add", "Cancel", form, func(ok bool) {
		if ok {
			w.submit()
		}
	}, m.win)
	w.dlg.Show()
	return w
}

func (w *addNodeWizard) submit() {
	kind, seed, name := w.kind.Selected, w.seed.Selected, w.name.Text
	w.m.do("add a "+kind, func(ctx context.Context) error {
		_, err := w.m.app.AddNode(ctx, kind, name, seed)
		return err
	})
}
