package chttest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJSNumber(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want float64
	}{
		{in: "", want: 0},
		{in: " 42 ", want: 42},
		{in: "1756100000000", want: 1756100000000},
		{in: "1.5", want: 1.5},
		{in: "1e3", want: 1000},
		{in: "0x10", want: 16},
		{in: "-Infinity", want: math.Inf(-1)},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, jsNumber(tt.in), tt.in)
	}
	for _, in := range []string{"abc", "1756100000000abc", "1_000", "NaN", "inf"} {
		require.True(t, math.IsNaN(jsNumber(in)), in)
	}
}

func TestJSNumberString(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   float64
		want string
	}{
		{in: 1756080000000, want: "1756080000000"},
		{in: 1.5, want: "1.5"},
		{in: -3, want: "-3"},
		{in: 1e21, want: "1e+21"},
		{in: 1e-7, want: "1e-07"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, jsNumberString(tt.in))
	}
}

func TestMomentValue(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   any
		want any
	}{
		{name: "Number", in: float64(1756080000000.7), want: float64(1756080000000)},
		{name: "Date", in: "2018-11-10", want: float64(1541808000000)},
		{name: "Compact", in: "20181110", want: float64(1541808000000)},
		{name: "DateTime", in: "2018-11-10T01:02:03", want: float64(1541811723000)},
		{name: "Fraction", in: "2018-11-10T01:02:03.5Z", want: float64(1541811723500)},
		{name: "Offset", in: "2018-11-10T05:45:00+05:45", want: float64(1541808000000)},
		{name: "RFC1123", in: "Sat, 10 Nov 2018 00:00:00 GMT", want: float64(1541808000000)},
		{name: "BadMonth", in: "2018-13-10", want: nil},
		{name: "Garbage", in: "soon", want: nil},
		{name: "Bool", in: true, want: nil},
		{name: "Null", in: nil, want: nil},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, momentValue(tt.in), tt.name)
	}
}

func TestTruthy(t *testing.T) {
	t.Parallel()

	for _, v := range []any{nil, false, float64(0), math.NaN(), ""} {
		require.False(t, truthy(v), "%v", v)
	}
	for _, v := range []any{true, float64(-1), "0", map[string]any{}, []any{}} {
		require.True(t, truthy(v), "%v", v)
	}
}

func TestJSString(t *testing.T) {
	t.Parallel()

	require.Equal(t, "[object Object]", jsString(map[string]any{"a": 1}))
	require.Equal(t, "a,,1", jsString([]any{"a", nil, float64(1)}))
	require.Equal(t, "null", jsString(nil))
	require.Equal(t, "true", jsString(true))
}

func TestMerge(t *testing.T) {
	t.Parallel()

	record := map[string]any{}
	formData := map[string]any{
		"a":     map[string]any{"b": "x", "c": "y"},
		"plain": float64(1),
		"empty": "",
	}
	merge([]string{"a", "b"}, record, formData)
	merge([]string{"plain"}, record, formData)
	merge([]string{"missing"}, record, formData)
	merge([]string{"empty", "x"}, record, formData)
	require.Equal(t, map[string]any{"a": map[string]any{"b": "x"}, "plain": float64(1)}, record)
}

func TestWantsJSON(t *testing.T) {
	t.Parallel()

	tests := []struct {
		accept []string
		want   bool
	}{
		{accept: nil, want: false},
		{accept: []string{"application/json"}, want: true},
		{accept: []string{"text/plain", "application/json"}, want: false},
		{accept: []string{"application/*"}, want: true},
		{accept: []string{"text/*;q=0.9, application/json;q=0.8"}, want: false},
		{accept: []string{"application/json;q=0"}, want: false},
		{accept: []string{`application/json;q="1"`}, want: true},
		{accept: []string{"*/*;q=0.1, application/json"}, want: true},
		{accept: []string{"garbage"}, want: false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, wantsJSON(tt.accept), "%q", tt.accept)
	}
}
