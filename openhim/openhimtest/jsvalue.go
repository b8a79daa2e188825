package openhimtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// jsKind is the type of a JavaScript value as core sees it after
// JSON.parse or after mongoose has stored it.
type jsKind uint8

const (
	jsUndefined jsKind = iota
	jsNull
	jsBool
	jsNumber
	jsString
	jsArray
	jsObject
	jsDate
)

// jsValue is a JavaScript value. The fake keeps request bodies and stored
// documents in this form, so that key order, null versus undefined, typeof
// and truthiness behave as in core (Node.js).
type jsValue struct {
	kind jsKind
	b    bool
	n    float64
	s    string
	arr  []*jsValue
	obj  *jsObj
	t    time.Time
}

// jsObj is a plain JavaScript object: own keys in JavaScript order
// (array-index keys ascending first, then the others in insertion order).
type jsObj struct {
	keys []string
	vals map[string]*jsValue
}

var (
	undefinedValue = &jsValue{kind: jsUndefined}
	nullValue      = &jsValue{kind: jsNull}
)

func jsStr(s string) *jsValue   { return &jsValue{kind: jsString, s: s} }
func jsNum(n float64) *jsValue  { return &jsValue{kind: jsNumber, n: n} }
func jsBoolean(b bool) *jsValue { return &jsValue{kind: jsBool, b: b} }
func jsTime(t time.Time) *jsValue {
	return &jsValue{kind: jsDate, t: t.UTC().Truncate(time.Millisecond)}
}

func jsArr(items ...*jsValue) *jsValue { return &jsValue{kind: jsArray, arr: items} }

func newObject() *jsValue {
	return &jsValue{kind: jsObject, obj: &jsObj{vals: map[string]*jsValue{}}}
}

// isArrayIndex reports whether k is a canonical array index, which
// JavaScript orders before other keys.
func isArrayIndex(k string) bool {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	return err == nil && n < math.MaxUint32
}

// get returns the own property k, or nil when there is none.
func (o *jsObj) get(k string) *jsValue {
	return o.vals[k]
}

// set sets the own property k, keeping JavaScript key order.
func (o *jsObj) set(k string, v *jsValue) {
	if _, ok := o.vals[k]; ok {
		o.vals[k] = v
		return
	}
	o.vals[k] = v
	if !isArrayIndex(k) {
		o.keys = append(o.keys, k)
		return
	}
	n, _ := strconv.ParseUint(k, 10, 64)
	i := sort.Search(len(o.keys), func(i int) bool {
		if !isArrayIndex(o.keys[i]) {
			return true
		}
		m, _ := strconv.ParseUint(o.keys[i], 10, 64)
		return m > n
	})
	o.keys = append(o.keys, "")
	copy(o.keys[i+1:], o.keys[i:])
	o.keys[i] = k
}

// del deletes the own property k.
func (o *jsObj) del(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, key := range o.keys {
		if key == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// isNullish reports v == null in JavaScript (null or undefined).
func (v *jsValue) isNullish() bool {
	return v == nil || v.kind == jsUndefined || v.kind == jsNull
}

// isUndefined reports v === undefined.
func (v *jsValue) isUndefined() bool {
	return v == nil || v.kind == jsUndefined
}

// isObject reports a plain object (not an array, not null).
func (v *jsValue) isObject() bool {
	return v != nil && v.kind == jsObject
}

// isArray reports Array.isArray(v).
func (v *jsValue) isArray() bool {
	return v != nil && v.kind == jsArray
}

// isString reports typeof v === 'string'.
func (v *jsValue) isString() bool {
	return v != nil && v.kind == jsString
}

// typeOf is the JavaScript typeof operator.
func (v *jsValue) typeOf() string {
	switch {
	case v == nil || v.kind == jsUndefined:
		return "undefined"
	case v.kind == jsBool:
		return "boolean"
	case v.kind == jsNumber:
		return "number"
	case v.kind == jsString:
		return "string"
	default:
		return "object"
	}
}

// truthy is JavaScript truthiness.
func (v *jsValue) truthy() bool {
	if v == nil {
		return false
	}
	switch v.kind {
	case jsUndefined, jsNull:
		return false
	case jsBool:
		return v.b
	case jsNumber:
		return v.n != 0 && !math.IsNaN(v.n)
	case jsString:
		return v.s != ""
	default:
		return true
	}
}

// prop is the property access v[k] for objects, arrays and strings
// (including "length"). It never returns nil.
func (v *jsValue) prop(k string) *jsValue {
	if v == nil {
		return undefinedValue
	}
	switch v.kind {
	case jsObject:
		if p := v.obj.get(k); p != nil {
			return p
		}
	case jsArray:
		if k == "length" {
			return jsNum(float64(len(v.arr)))
		}
		if isArrayIndex(k) {
			i, _ := strconv.Atoi(k)
			if i < len(v.arr) && v.arr[i] != nil {
				return v.arr[i]
			}
		}
	case jsString:
		u := utf16Units(v.s)
		if k == "length" {
			return jsNum(float64(len(u)))
		}
		if isArrayIndex(k) {
			i, _ := strconv.Atoi(k)
			if i < len(u) {
				return jsStr(string(rune(u[i])))
			}
		}
	}
	return undefinedValue
}

// setProp is the assignment v[k] = p for objects and arrays; other values
// ignore it, as JavaScript does in sloppy mode.
func (v *jsValue) setProp(k string, p *jsValue) {
	switch {
	case v == nil:
	case v.kind == jsObject:
		v.obj.set(k, p)
	case v.kind == jsArray && isArrayIndex(k):
		i, _ := strconv.Atoi(k)
		for len(v.arr) <= i {
			v.arr = append(v.arr, undefinedValue)
		}
		v.arr[i] = p
	}
}

// ownKeys is Object.keys(v) (for..in gives the same keys for the values the
// fake deals with).
func (v *jsValue) ownKeys() []string {
	if v == nil {
		return nil
	}
	switch v.kind {
	case jsObject:
		return append([]string(nil), v.obj.keys...)
	case jsArray:
		out := make([]string, len(v.arr))
		for i := range v.arr {
			out[i] = strconv.Itoa(i)
		}
		return out
	case jsString:
		u := utf16Units(v.s)
		out := make([]string, len(u))
		for i := range u {
			out[i] = strconv.Itoa(i)
		}
		return out
	}
	return nil
}

// arrayFrom is Array.from(v) for the values the fake deals with: arrays are
// copied, strings split into characters, anything else gives [].
func (v *jsValue) arrayFrom() []*jsValue {
	switch {
	case v.isArray():
		return append([]*jsValue(nil), v.arr...)
	case v.isString():
		var out []*jsValue
		for _, r := range v.s {
			out = append(out, jsStr(string(r)))
		}
		return out
	}
	return nil
}

// clone is a deep copy.
func (v *jsValue) clone() *jsValue {
	if v == nil {
		return undefinedValue
	}
	c := *v
	switch v.kind {
	case jsArray:
		c.arr = make([]*jsValue, len(v.arr))
		for i, e := range v.arr {
			c.arr[i] = e.clone()
		}
	case jsObject:
		c.obj = &jsObj{keys: append([]string(nil), v.obj.keys...), vals: make(map[string]*jsValue, len(v.obj.vals))}
		for k, e := range v.obj.vals {
			c.obj.vals[k] = e.clone()
		}
	}
	return &c
}

// strictEquals is ===. Objects are never equal, as two parsed values are
// never the same object.
func strictEquals(a, b *jsValue) bool {
	if a == nil {
		a = undefinedValue
	}
	if b == nil {
		b = undefinedValue
	}
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case jsUndefined, jsNull:
		return true
	case jsBool:
		return a.b == b.b
	case jsNumber:
		return a.n == b.n
	case jsString:
		return a.s == b.s
	}
	return a == b
}

// toJSString is String(v).
func (v *jsValue) toJSString() string {
	if v == nil {
		return "undefined"
	}
	switch v.kind {
	case jsUndefined:
		return "undefined"
	case jsNull:
		return "null"
	case jsBool:
		return strconv.FormatBool(v.b)
	case jsNumber:
		return jsNumberString(v.n)
	case jsString:
		return v.s
	case jsArray:
		parts := make([]string, len(v.arr))
		for i, e := range v.arr {
			if !e.isNullish() {
				parts[i] = e.toJSString()
			}
		}
		return strings.Join(parts, ",")
	case jsDate:
		return v.t.In(time.UTC).Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)")
	}
	return "[object Object]"
}

// jsNumberString is Number.prototype.toString().
func jsNumberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	b := strconv.AppendFloat(nil, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return string(b)
}

var jsDecimalLiteral = regexp.MustCompile(`^[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$`)

// jsStringToNumber is Number(s) for a string.
func jsStringToNumber(s string) float64 {
	s = strings.TrimFunc(s, isJSWhitespace)
	if s == "" {
		return 0
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			n, err := strconv.ParseUint(s[2:], base, 64)
			if err != nil || strings.Contains(s[2:], "_") {
				return math.NaN()
			}
			return float64(n)
		}
	}
	if !jsDecimalLiteral.MatchString(s) {
		return math.NaN()
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return math.NaN()
	}
	return f
}

func isJSWhitespace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// toNumber is Number(v) (the relational operators use it).
func (v *jsValue) toNumber() float64 {
	if v == nil {
		return math.NaN()
	}
	switch v.kind {
	case jsNull:
		return 0
	case jsBool:
		if v.b {
			return 1
		}
		return 0
	case jsNumber:
		return v.n
	case jsString:
		return jsStringToNumber(v.s)
	case jsDate:
		return float64(v.t.UnixMilli())
	case jsArray:
		return jsStringToNumber(v.toJSString())
	}
	return math.NaN()
}

// utf16Units splits s into UTF-16 code units, as JavaScript strings are.
func utf16Units(s string) []uint16 {
	out := make([]uint16, 0, len(s))
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xd800+(r>>10)), uint16(0xdc00+(r&0x3ff)))
			continue
		}
		out = append(out, uint16(r))
	}
	return out
}

// errNotJSON is returned by parseJSON for a body JSON.parse rejects.
var errNotJSON = errors.New("invalid JSON")

// parseJSON is JSON.parse: duplicate keys keep their first position and
// their last value; numbers are doubles.
func parseJSON(data []byte) (*jsValue, error) {
	if !json.Valid(data) {
		var x any
		if err := json.Unmarshal(data, &x); err != nil {
			return nil, fmt.Errorf("%w: %w", errNotJSON, err)
		}
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotJSON, err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (*jsValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return nullValue, nil
	case bool:
		return jsBoolean(t), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return jsNum(f), nil
	case string:
		return jsStr(t), nil
	case json.Delim:
		switch t {
		case '[':
			arr := jsArr()
			for dec.More() {
				e, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr.arr = append(arr.arr, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		case '{':
			obj := newObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				e, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj.obj.set(k, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		}
	}
	return nil, io.ErrUnexpectedEOF
}

// fromGo converts a value decoded by encoding/json (or built from maps,
// slices, strings, numbers and bools) to a jsValue through JSON.
func fromGo(v any) (*jsValue, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return parseJSON(b)
}

// stringify is JSON.stringify(v). It returns nil for undefined.
func (v *jsValue) stringify() []byte {
	if v.isUndefined() {
		return nil
	}
	var buf bytes.Buffer
	v.writeJSON(&buf)
	return buf.Bytes()
}

func (v *jsValue) writeJSON(buf *bytes.Buffer) {
	switch v.kind {
	case jsUndefined, jsNull:
		buf.WriteString("null")
	case jsBool:
		buf.WriteString(strconv.FormatBool(v.b))
	case jsNumber:
		if math.IsNaN(v.n) || math.IsInf(v.n, 0) {
			buf.WriteString("null")
			return
		}
		buf.WriteString(jsNumberString(v.n))
	case jsString:
		writeJSONString(buf, v.s)
	case jsDate:
		writeJSONString(buf, isoString(v.t))
	case jsArray:
		buf.WriteByte('[')
		for i, e := range v.arr {
			if i > 0 {
				buf.WriteByte(',')
			}
			if e == nil {
				e = undefinedValue
			}
			e.writeJSON(buf)
		}
		buf.WriteByte(']')
	case jsObject:
		buf.WriteByte('{')
		first := true
		for _, k := range v.obj.keys {
			e := v.obj.vals[k]
			if e.isUndefined() {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			writeJSONString(buf, k)
			buf.WriteByte(':')
			e.writeJSON(buf)
		}
		buf.WriteByte('}')
	}
}

// writeJSONString quotes s as JSON.stringify does (no HTML escaping).
func writeJSONString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch r {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(buf, `\u%04x`, r)
				continue
			}
			buf.WriteRune(r)
		}
	}
	buf.WriteByte('"')
}

// isoString is Date.prototype.toISOString().
func isoString(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// toGo converts v to the values encoding/json would decode (map[string]any,
// []any, float64, string, bool, nil).
func (v *jsValue) toGo() any {
	if v == nil {
		return nil
	}
	switch v.kind {
	case jsBool:
		return v.b
	case jsNumber:
		return v.n
	case jsString:
		return v.s
	case jsDate:
		return isoString(v.t)
	case jsArray:
		out := make([]any, len(v.arr))
		for i, e := range v.arr {
			out[i] = e.toGo()
		}
		return out
	case jsObject:
		out := make(map[string]any, len(v.obj.keys))
		for _, k := range v.obj.keys {
			if e := v.obj.vals[k]; !e.isUndefined() {
				out[k] = e.toGo()
			}
		}
		return out
	}
	return nil
}

var jsIdentifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// inspect is a small util.inspect, for the value in mongoose's CastError
// messages.
func (v *jsValue) inspect() string {
	if v == nil {
		return "undefined"
	}
	switch v.kind {
	case jsString:
		return "'" + strings.ReplaceAll(v.s, "'", `\'`) + "'"
	case jsDate:
		return isoString(v.t)
	case jsArray:
		if len(v.arr) == 0 {
			return "[]"
		}
		parts := make([]string, len(v.arr))
		for i, e := range v.arr {
			parts[i] = e.inspect()
		}
		return "[ " + strings.Join(parts, ", ") + " ]"
	case jsObject:
		if len(v.obj.keys) == 0 {
			return "{}"
		}
		parts := make([]string, 0, len(v.obj.keys))
		for _, k := range v.obj.keys {
			name := k
			if !jsIdentifier.MatchString(k) {
				name = "'" + k + "'"
			}
			parts = append(parts, name+": "+v.obj.vals[k].inspect())
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return v.toJSString()
}

// valueType is mongoose's getValueType, for CastError messages.
func (v *jsValue) valueType() string {
	switch {
	case v.isNullish():
		return v.toJSString()
	case v.kind == jsArray:
		return "Array"
	case v.kind == jsObject:
		return "Object"
	case v.kind == jsDate:
		return "Date"
	}
	return v.typeOf()
}
