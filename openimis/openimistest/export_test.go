package openimistest

// ValidDjangoURL exposes validDjangoURL to the external tests.
var ValidDjangoURL = validDjangoURL
