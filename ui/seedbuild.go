package ui

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// Seed build profiles, as the wizard offers them.
const (
	profileGrid = "grid: what a running grid needs (~67 MB, about 10 min)"
	profileFull = "full: everything but other architectures (~280 MB)"
)

// seedBuildWizard builds a seed from a Plan 9 CD image or its tree ("New
// seed from a Plan 9 CD…"): the engine installs it for real, a long job
// whose row shows the step, the bytes copied and Cancel.
type seedBuildWizard struct {
	m        *MainWindow
	from     *widget.Entry
	name     *widget.Entry
	profile  *widget.RadioGroup
	authDom  *widget.Entry
	user     *widget.Entry
	password *widget.Entry
	confirm  *widget.Entry
	dlg      *dialog.FormDialog
	lastFrom string // the path the name was last offered for
}

// onNewSeed opens the New seed wizard.
func (m *MainWindow) onNewSeed() { m.showSeedBuild() }

func (m *MainWindow) showSeedBuild() *seedBuildWizard {
	w := &seedBuildWizard{
		m: m, from: widget.NewEntry(), name: widget.NewEntry(),
		profile: widget.NewRadioGroup([]string{profileGrid, profileFull}, nil),
		authDom: widget.NewEntry(), user: widget.NewEntry(),
		password: widget.NewPasswordEntry(), confirm: widget.NewPasswordEntry(),
	}
	w.from.SetPlaceHolder("9legacy.iso, or a directory holding the CD's tree")
	w.from.Validator = func(s string) error {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("give the CD image or its directory")
		}
		return nil
	}
	w.from.OnChanged = func(s string) {
		if w.name.Text == "" || w.name.Text == seedNameOf(w.lastFrom) {
			w.name.SetText(seedNameOf(s))
		}
		w.lastFrom = s
	}
	w.name.Validator = func(s string) error {
		if s == "" || strings.ContainsAny(s, " /\\") {
			return fmt.Errorf("a seed name is one word")
		}
		return nil
	}
	w.profile.SetSelected(profileGrid)
	w.profile.Required = true
	w.authDom.SetText(app.DefaultAuthDom)
	w.user.SetText(app.DefaultUser)
	checkPasswords(w.user, w.password, w.confirm, nil)
	chooseFile := widget.NewButton("CD image…", func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err == nil && r != nil {
				w.from.SetText(r.URI().Path())
				r.Close()
			}
		}, m.win)
	})
	chooseDir := widget.NewButton("Directory…", func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				w.from.SetText(u.Path())
			}
		}, m.win)
	})
	note := widget.NewLabel("Gridlord installs the CD for real, with Plan 9's own programs at the " +
		"console of a VM it starts and stops by itself, then imports the new disk as a seed. " +
		"The password is the host owner's: every node made from the seed logs in with it.")
	note.Wrapping = fyne.TextWrapWord
	items := []*widget.FormItem{
		widget.NewFormItem("Plan 9 CD", w.from),
		widget.NewFormItem("", container.NewHBox(chooseFile, chooseDir)),
		widget.NewFormItem("Seed name", w.name),
		widget.NewFormItem("Install", w.profile),
		widget.NewFormItem("Auth domain", w.authDom),
		widget.NewFormItem("Host owner", w.user),
		widget.NewFormItem("Password", w.password),
		widget.NewFormItem("Again", w.confirm),
		widget.NewFormItem("", note),
	}
	w.dlg = dialog.NewForm("New seed from a Plan 9 CD", "Build", "Cancel", items, func(ok bool) {
		if ok {
			w.submit()
		}
	}, m.win)
	w.dlg.Resize(fyne.NewSize(620, 520))
	w.dlg.Show()
	return w
}

// seedNameOf is the seed name the wizard offers for a CD path: its base
// name without the extension.
func seedNameOf(from string) string {
	from = strings.TrimRight(strings.TrimSpace(from), `/\`)
	if from == "" {
		return ""
	}
	base := filepath.Base(from)
	return strings.ReplaceAll(strings.TrimSuffix(base, filepath.Ext(base)), " ", "-")
}

// spec is what the wizard asks for.
func (w *seedBuildWizard) spec() app.SeedBuildSpec {
	profile := "grid"
	if w.profile.Selected == profileFull {
		profile = "full"
	}
	return app.SeedBuildSpec{
		Name: w.name.Text, From: strings.TrimSpace(w.from.Text), Profile: profile,
		Identity: app.Identity{User: w.user.Text, AuthDom: w.authDom.Text, Password: w.password.Text},
	}
}

// submit starts the build as a long job: its row says the step and the
// bytes copied; Cancel stops the install and removes what it made.
func (w *seedBuildWizard) submit() {
	spec := w.spec()
	w.m.long("Building seed "+spec.Name, func(ctx context.Context, progress func(float64, string)) error {
		return w.m.app.BuildSeed(ctx, spec, func(p app.SeedBuildProgress) { progress(p.Fraction(), p.String()) })
	}, func() {
		w.m.say(fmt.Sprintf("seed %s built from %s: Add node offers it", spec.Name, spec.From))
	})
}
