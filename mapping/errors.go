package mapping

import "strings"

// FieldError is one problem with one input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors lists every problem found in an input, so that a sender learns
// all of them at once.
type FieldErrors []FieldError

// Error implements error.
func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (e *FieldErrors) add(field, msg string) {
	*e = append(*e, FieldError{Field: field, Message: msg})
}

// err returns e as an error, or nil when it is empty.
func (e FieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}
