package ui

import (
	"context"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"gridlord/app"
)

// wholeGrid is the Reset wizard's choice for every node.
const wholeGrid = "(whole grid)"

// resetWizard gives a node, or the whole grid, a new auth domain, host
// owner and password (the old confighelper "r"): the grid model and the
// nvram on the disks of stopped nodes.
type resetWizard struct {
	m        *MainWindow
	node     *widget.Select
	authDom  *widget.Entry
	user     *widget.Entry
	password *widget.Entry
	confirm  *widget.Entry
	fresh    *widget.Check
	keyfs    *widget.Check
	problem  *widget.Label
	dlg      *dialog.FormDialog
}

func (m *MainWindow) showReset(node string) *resetWizard {
	names := []string{wholeGrid}
	for _, n := range m.snapshot().Nodes {
		if !n.Embedded {
			names = append(names, n.Name)
		}
	}
	w := &resetWizard{
		m: m, node: widget.NewSelect(names, nil),
		authDom: widget.NewEntry(), user: widget.NewEntry(),
		password: widget.NewPasswordEntry(), confirm: widget.NewPasswordEntry(),
		problem: widget.NewLabel(""),
		fresh:   widget.NewCheck("First recreate the disk from its seed (erases it)", nil),
		keyfs:   widget.NewCheck("Also change the user in the auth server's keyfs", nil),
	}
	w.keyfs.SetChecked(true)
	keyfsNote := widget.NewLabel("A machine's nvram holds only its own key; the users' keys live in the auth " +
		"server's keyfs, inside its file system. Logins fail until both agree, so Gridlord also types " +
		"auth/changeuser at the auth server's console (and auth/convkeys when it is reset too), and " +
		"makes a new host owner a user of the fossil the node attaches to. The nodes are stopped and " +
		"boot with the new identity at their next start.")
	keyfsNote.Wrapping = fyne.TextWrapWord
	w.authDom.SetText(app.DefaultAuthDom)
	w.user.SetText(app.DefaultUser)
	if n, ok := m.snapshot().NodeByName(node); ok && !n.Embedded {
		w.node.SetSelected(node)
		w.authDom.SetText(n.AuthDom)
		w.user.SetText(n.User)
	} else {
		w.node.SetSelected(wholeGrid)
	}
	w.problem.Wrapping = fyne.TextWrapWord
	// The Reset button is enabled only while the passwords pass (the
	// form's validation): a refusal after pressing it would close the
	// wizard and lose what was typed.
	// Each field is marked for its own fault: the password for its
	// strength, the second one for differing from it.
	checkPasswords(w.user, w.password, w.confirm, func() { w.check() })
	items := []*widget.FormItem{
		widget.NewFormItem("Machine", w.node),
		widget.NewFormItem("Auth domain", w.authDom),
		widget.NewFormItem("Host owner", w.user),
		widget.NewFormItem("Password", w.password),
		widget.NewFormItem("Again", w.confirm),
		widget.NewFormItem("Disk", w.fresh),
		widget.NewFormItem("Users", w.keyfs),
		widget.NewFormItem("", keyfsNote),
		widget.NewFormItem("", w.problem),
	}
	w.dlg = dialog.NewForm("Reset machine identity", "Reset", "Cancel", items, func(ok bool) {
		if ok {
			w.submit()
		}
	}, m.win)
	w.dlg.Resize(fyne.NewSize(560, 480))
	w.dlg.Show()
	w.problem.SetText("") // nothing typed yet is no problem to show
	return w
}

// checkPasswords makes a host owner's password field and its repetition
// validate as a person types: the first for its strength (app.CheckPassword,
// against the user field), the second for differing from it; a form's
// default button is enabled only while both pass. changed (may be nil)
// runs at every check.
func checkPasswords(user, password, again *widget.Entry, changed func()) {
	note := func() {
		if changed != nil {
			changed()
		}
	}
	password.Validator = func(p string) error { note(); return app.CheckPassword(user.Text, p) }
	again.Validator = func(c string) error {
		note()
		if c != password.Text {
			return fmt.Errorf("the two passwords differ")
		}
		return nil
	}
	password.OnChanged = func(string) { again.Validate() }
	user.OnChanged = func(string) { password.Validate() }
}

// check says what is wrong with the password so far.
func (w *resetWizard) check() error {
	err := app.CheckPassword(w.user.Text, w.password.Text)
	if err == nil && w.password.Text != w.confirm.Text {
		err = fmt.Errorf("the two passwords differ")
	}
	if err != nil {
		w.problem.SetText(err.Error())
	} else {
		w.problem.SetText("")
	}
	return err
}

// submit checks the password and resets; a refusal changes nothing.
func (w *resetWizard) submit() {
	if err := w.check(); err != nil {
		w.m.showError("Reset refused", err)
		return
	}
	id := app.Identity{User: w.user.Text, AuthDom: w.authDom.Text, Password: w.password.Text, FreshDisk: w.fresh.Checked, Keyfs: w.keyfs.Checked}
	var names []string
	if w.node.Selected != wholeGrid {
		names = []string{w.node.Selected}
	}
	w.m.long("Resetting the identity", func(ctx context.Context, _ func(float64, string)) error {
		written, err := w.m.app.ResetIdentity(ctx, id, names...)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("identity %s@%s: nvram written on %s", id.User, id.AuthDom, orNone(written))
		if id.Keyfs {
			msg += "; the auth server's keyfs has the new password"
		} else {
			msg += "; the auth server's keyfs still has the old password: logins fail until it is changed"
		}
		w.m.ui(func() { w.m.say(msg) })
		return nil
	}, nil)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no disk"
	}
	return strings.Join(s, ", ")
}
