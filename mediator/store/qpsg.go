package store

import (
	"database/sql/driver"
	"reflect"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// stablePlans turns on SQLite's query planner stability guarantee
// (SQLITE_DBCONFIG_ENABLE_QPSG) for a connection of modernc's driver.
//
// Without it, SQLite compiles a statement again whenever a value bound to a
// LIMIT (or another value the plan may depend on) changes. River's fetch
// binds as its LIMIT the number of free job slots, which changes on almost
// every call, and that statement takes about 250 µs to compile: 5–6 % of the
// mediator's CPU under load went to compiling it again. The plans of the
// mediator's and River's statements do not depend on bound values.
//
// modernc's driver has no option for it, so the connection's SQLite handle
// is read from the driver's connection. When a later version of the driver
// lays its connection out differently, nothing is changed: the connection
// works as before, only slower, and the store's test of the guarantee
// fails.
func stablePlans(c driver.Conn) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	db, tlsField := v.Elem().FieldByName("db"), v.Elem().FieldByName("tls")
	if !db.IsValid() || db.Kind() != reflect.Uintptr || db.Uint() == 0 ||
		!tlsField.IsValid() || tlsField.Type() != reflect.TypeFor[*libc.TLS]() || tlsField.IsNil() {
		return
	}
	tls := (*libc.TLS)(tlsField.UnsafePointer())
	// sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_QPSG, int on, int *pOn):
	// libc.VaList gives each variadic argument 8 bytes; pOn is NULL.
	const slot = 8
	args := libc.Xmalloc(tls, 2*slot)
	if args == 0 {
		return
	}
	defer libc.Xfree(tls, args)
	sqlite3.Xsqlite3_db_config(tls, uintptr(db.Uint()), sqlite3.SQLITE_DBCONFIG_ENABLE_QPSG, libc.VaList(args, int32(1), uintptr(0)))
}
