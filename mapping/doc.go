// Package mapping holds the pure translations between openIMIS and the CHT:
// ClaimResponse validation and extraction, the CHT person and OP report built
// from them, CHT feedback to FHIR, and the Gregorian to Bikram Sambat
// calendar. It does no I/O and reads no clock: every input is an argument.
package mapping
