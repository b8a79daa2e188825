package mapping

import (
	"crypto/sha1"
	"fmt"
	"strings"
)

// IsUUID reports whether s is a UUID in canonical 8-4-4-4-12 hex form, in
// either case (openIMIS stores some UUIDs upper-case).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// personNamespace is the UUID namespace of CHT person ids derived from
// openIMIS insuree UUIDs.
var personNamespace = [16]byte{0x6f, 0x1c, 0x8e, 0x1a, 0x3b, 0x52, 0x4f, 0x0e, 0x9d, 0x61, 0x2a, 0x7c, 0x54, 0x83, 0x1b, 0x90}

// PersonID returns the CHT person _id for an insuree: the name-based (version
// 5) UUID of the lower-cased insuree UUID. Creating the same insuree twice
// then conflicts instead of duplicating, across retries and replicas.
func PersonID(insureeUUID string) string {
	h := sha1.New()
	h.Write(personNamespace[:])
	h.Write([]byte(strings.ToLower(insureeUUID)))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
