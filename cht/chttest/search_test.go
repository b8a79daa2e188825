package chttest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestViewIndex(t *testing.T) {
	t.Parallel()
	v := newViewIndex()
	v.put("a", []string{"name:asha", "asha", "openimis_id:u1"})
	v.put("b", []string{"name:asha", "name:asha", "openimis_id:u2"}) // a doc may emit a key twice
	all := func(string) bool { return true }

	rows := v.query("NAME:Asha ", all)
	sortRows(rows)
	require.Equal(t, []indexRow{{key: "name:asha", id: "a"}, {key: "name:asha", id: "b"}, {key: "name:asha", id: "b"}}, rows)
	require.Equal(t, []indexRow{{key: "name:asha", id: "a"}}, v.query("name:asha", func(id string) bool { return id == "a" }))

	// A query without a colon is a starts-with range over every key.
	rows = v.query("ash", all)
	require.Equal(t, []indexRow{{key: "asha", id: "a"}}, rows)

	// Rewriting a doc replaces its rows: the old keys no longer find it.
	v.put("a", []string{"openimis_id:u3"})
	require.Empty(t, v.query("openimis_id:u1", all))
	require.Equal(t, []indexRow{{key: "openimis_id:u3", id: "a"}}, v.query("openimis_id:u3", all))
	require.Len(t, v.query("name:asha", all), 2)
	v.put("a", nil)
	v.put("b", nil)
	require.Empty(t, v.query("name:asha", all))
	require.Empty(t, v.byKey, "no empty entries are left behind")
}
