package grid

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// CheckPassword refuses passwords too weak for a host owner's key: empty,
// shorter than 8 characters, made of one kind of character only, or
// containing the user name. Plan 9 keys come from at most 27 bytes.
func CheckPassword(user, password string) error {
	switch {
	case password == "":
		return errors.New("the password is empty: the host owner needs a password to make the machine key")
	case len(password) < 8:
		return errors.New("the password is too short: use at least 8 characters")
	case len(password) > 27:
		return errors.New("the password is too long: Plan 9 uses at most 27 bytes")
	case strings.ContainsAny(password, "\r\n"):
		return errors.New("the password has a line break: it is typed at consoles, choose another")
	case user != "" && strings.Contains(strings.ToLower(password), strings.ToLower(user)):
		return fmt.Errorf("the password contains the user name %q: choose another", user)
	}
	var letters, others bool
	for _, r := range password {
		if unicode.IsLetter(r) {
			letters = true
		} else {
			others = true
		}
	}
	if !letters || !others {
		return errors.New("the password is too weak: mix letters with digits or symbols")
	}
	return nil
}
