package openhimtest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// fieldKind is a mongoose SchemaType.
type fieldKind uint8

const (
	kString fieldKind = iota
	kNumber
	kBool
	kDate
	kObjectID
	kMixed
	kArray    // array of primitives (elem)
	kDocArray // array of subdocuments (sub)
	kNested   // nested object without _id (sub)
)

// field is one path of a mongoose schema.
type field struct {
	name     string
	kind     fieldKind
	required bool
	enum     []string
	min, max *float64
	def      *jsValue
	elem     *field
	sub      *schema
}

// schema is a mongoose schema: its paths in declaration order.
type schema struct {
	model  string
	fields []field
	id     bool
}

func fl(f float64) *float64 { return &f }

var routeDef = &schema{id: true, fields: []field{
	{name: "name", kind: kString, required: true},
	{name: "type", kind: kString, def: jsStr("http"), enum: []string{"http", "kafka"}},
	{name: "cert", kind: kObjectID},
	{name: "status", kind: kString, def: jsStr("enabled"), enum: []string{"enabled", "disabled"}},
	{name: "secured", kind: kBool},
	{name: "host", kind: kString},
	{name: "port", kind: kNumber, min: fl(0), max: fl(65536)},
	{name: "path", kind: kString},
	{name: "pathTransform", kind: kString},
	{name: "primary", kind: kBool},
	{name: "username", kind: kString},
	{name: "password", kind: kString},
	{name: "forwardAuthHeader", kind: kBool, def: jsBoolean(false)},
	{name: "waitPrimaryResponse", kind: kBool},
	{name: "statusCodesCheck", kind: kString},
	{name: "kafkaClientId", kind: kString},
	{name: "kafkaTopic", kind: kString},
}}

var contactUserDef = &schema{id: true, fields: []field{
	{name: "user", kind: kString, required: true},
	{name: "method", kind: kString, required: true, enum: []string{"email", "sms"}},
	{name: "maxAlerts", kind: kString, enum: []string{"no max", "1 per hour", "1 per day"}, def: jsStr("no max")},
}}

var alertsDef = &schema{id: true, fields: []field{
	{name: "condition", kind: kString, def: jsStr("status"), enum: []string{"status", "auto-retry-max-attempted"}},
	{name: "status", kind: kString},
	{name: "failureRate", kind: kNumber},
	{name: "groups", kind: kArray, elem: &field{kind: kObjectID}},
	{name: "users", kind: kDocArray, sub: contactUserDef},
}}

var rewriteRuleDef = &schema{id: true, fields: []field{
	{name: "fromHost", kind: kString, required: true},
	{name: "toHost", kind: kString, required: true},
	{name: "fromPort", kind: kNumber, required: true, def: jsNum(80)},
	{name: "toPort", kind: kNumber, required: true, def: jsNum(80)},
	{name: "pathTransform", kind: kString},
}}

var updatedByDef = &schema{fields: []field{
	{name: "id", kind: kObjectID},
	{name: "name", kind: kString},
}}

// channelFields is core's ChannelDef (src/model/channels.js).
var channelFields = []field{
	{name: "name", kind: kString, required: true},
	{name: "description", kind: kString},
	{name: "urlPattern", kind: kString, required: true},
	{name: "isAsynchronousProcess", kind: kBool, def: jsBoolean(false)},
	{name: "maxBodyAgeDays", kind: kNumber, min: fl(1), max: fl(36500)},
	{name: "lastBodyCleared", kind: kDate},
	{name: "timeout", kind: kNumber, min: fl(1), max: fl(3600000)},
	{name: "methods", kind: kArray, elem: &field{kind: kString, enum: []string{
		"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	}}},
	{name: "type", kind: kString, def: jsStr("http"), enum: []string{"http", "tcp", "tls", "polling"}},
	{name: "priority", kind: kNumber, min: fl(1)},
	{name: "tcpPort", kind: kNumber, min: fl(0), max: fl(65536)},
	{name: "tcpHost", kind: kString},
	{name: "pollingSchedule", kind: kString},
	{name: "requestBody", kind: kBool},
	{name: "responseBody", kind: kBool},
	{name: "allow", kind: kArray, elem: &field{kind: kString}},
	{name: "whitelist", kind: kArray, elem: &field{kind: kString}},
	{name: "authType", kind: kString, def: jsStr("private"), enum: []string{"private", "public"}},
	{name: "routes", kind: kDocArray, sub: routeDef},
	{name: "matchContentTypes", kind: kArray, elem: &field{kind: kString}},
	{name: "matchContentRegex", kind: kString},
	{name: "matchContentXpath", kind: kString},
	{name: "matchContentJson", kind: kString},
	{name: "matchContentValue", kind: kString},
	{name: "properties", kind: kArray, elem: &field{kind: kMixed}},
	{name: "txViewAcl", kind: kArray, elem: &field{kind: kString}},
	{name: "txViewFullAcl", kind: kArray, elem: &field{kind: kString}},
	{name: "txRerunAcl", kind: kArray, elem: &field{kind: kString}},
	{name: "alerts", kind: kDocArray, sub: alertsDef},
	{name: "status", kind: kString, def: jsStr("enabled"), enum: []string{"enabled", "disabled", "deleted"}},
	{name: "rewriteUrls", kind: kBool, def: jsBoolean(false)},
	{name: "addAutoRewriteRules", kind: kBool, def: jsBoolean(true)},
	{name: "rewriteUrlsConfig", kind: kDocArray, sub: rewriteRuleDef},
	{name: "autoRetryEnabled", kind: kBool, def: jsBoolean(false)},
	{name: "autoRetryPeriodMinutes", kind: kNumber, def: jsNum(60), min: fl(1)},
	{name: "autoRetryMaxAttempts", kind: kNumber, min: fl(0)},
	{name: "updatedBy", kind: kNested, sub: updatedByDef},
}

// channelDef is ChannelDef embedded in a mediator's defaultChannelConfig.
var channelDef = &schema{id: true, fields: channelFields}

// channelSchema is the Channel model.
var channelSchema = &schema{model: "Channel", id: true, fields: channelFields}

// configParamTypes are core's configDef types (src/model/mediators.js).
var configParamTypes = []string{"string", "bool", "number", "option", "bigstring", "map", "struct", "password"}

var configDefSchema = &schema{id: true, fields: []field{
	{name: "param", kind: kString},
	{name: "displayName", kind: kString},
	{name: "description", kind: kString},
	{name: "type", kind: kString, enum: configParamTypes},
	{name: "values", kind: kArray, elem: &field{kind: kString}},
	{name: "template", kind: kArray, elem: &field{kind: kMixed}},
	{name: "array", kind: kBool},
}}

// mediatorSchema is the Mediator model (src/model/mediators.js).
var mediatorSchema = &schema{model: "Mediator", id: true, fields: []field{
	{name: "urn", kind: kString, required: true},
	{name: "version", kind: kString, required: true},
	{name: "name", kind: kString, required: true},
	{name: "description", kind: kString},
	{name: "endpoints", kind: kDocArray, sub: routeDef},
	{name: "defaultChannelConfig", kind: kDocArray, sub: channelDef},
	{name: "configDefs", kind: kDocArray, sub: configDefSchema},
	{name: "config", kind: kMixed},
	{name: "_configModifiedTS", kind: kDate},
	{name: "_uptime", kind: kNumber},
	{name: "_lastHeartbeat", kind: kDate},
}}

// fieldError is one entry of a mongoose ValidationError.
type fieldError struct {
	path string
	msg  string
}

// docErrors collects the errors of casting and validating one document.
// Cast errors happen while the document is built, so they come first.
type docErrors struct {
	cast  []fieldError
	valid []fieldError
}

func (e *docErrors) empty() bool { return len(e.cast) == 0 && len(e.valid) == 0 }

// validationMessage is mongoose's ValidationError message.
func (e *docErrors) validationMessage(model string) string {
	seen := map[string]bool{}
	var parts []string
	for _, fe := range append(append([]fieldError(nil), e.cast...), e.valid...) {
		if seen[fe.path] {
			continue
		}
		seen[fe.path] = true
		parts = append(parts, fe.path+": "+fe.msg)
	}
	return model + " validation failed: " + strings.Join(parts, ", ")
}

// castMessage formats a mongoose 6 CastError message.
func castMessage(kind string, v *jsValue, path string) string {
	s := v.inspect()
	if strings.HasPrefix(s, "'") {
		s = `"` + s[1:]
	}
	if strings.HasSuffix(s, "'") {
		s = s[:len(s)-1] + `"`
	}
	if !strings.HasPrefix(s, `"`) {
		s = `"` + s + `"`
	}
	return fmt.Sprintf(`Cast to %s failed for value %s (type %s) at path "%s"`, kind, s, v.valueType(), path)
}

func kindName(k fieldKind) string {
	switch k {
	case kString:
		return "string"
	case kNumber:
		return "Number"
	case kBool:
		return "Boolean"
	case kDate:
		return "date"
	case kObjectID:
		return "ObjectId"
	}
	return "Embedded"
}

// castDoc builds a (sub)document of s from in, as mongoose's constructor
// does: unknown paths are dropped, values cast, defaults applied. With
// validate it also runs the required, enum, min and max validators, as
// save() does. prefix is the path of the document inside its parent, with a
// trailing dot.
func castDoc(s *schema, in *jsValue, prefix string, validate bool, errs *docErrors) *jsValue {
	out := newObject()
	if s.id {
		id := in.prop("_id")
		if id.isString() && isObjectID(id.s) {
			out.obj.set("_id", jsStr(strings.ToLower(id.s)))
		} else {
			out.obj.set("_id", jsStr(newObjectID()))
		}
	}
	for i := range s.fields {
		f := &s.fields[i]
		v := castField(f, in.prop(f.name), prefix, validate, errs)
		if !v.isUndefined() {
			out.obj.set(f.name, v)
		}
	}
	return out
}

// castField casts one path of a document. It returns undefined when the
// path stays unset.
func castField(f *field, v *jsValue, prefix string, validate bool, errs *docErrors) *jsValue {
	path := prefix + f.name
	switch f.kind {
	case kDocArray, kArray:
		if v.isUndefined() {
			return jsArr()
		}
		if v.kind == jsNull {
			return nullValue
		}
		items := []*jsValue{v}
		if v.isArray() {
			items = v.arr
		}
		out := jsArr()
		for i, it := range items {
			ip := path + "." + strconv.Itoa(i)
			if f.kind == kDocArray {
				if !it.isObject() {
					errs.cast = append(errs.cast, fieldError{ip, castMessage("Embedded", it, f.name)})
					continue
				}
				out.arr = append(out.arr, castDoc(f.sub, it, ip+".", validate, errs))
				continue
			}
			cv, ok := castPrimitive(f.elem.kind, it)
			if !ok {
				errs.cast = append(errs.cast, fieldError{ip, castMessage("["+kindName(f.elem.kind)+"]", it, f.name+"."+strconv.Itoa(i))})
				continue
			}
			if validate && len(f.elem.enum) > 0 && cv.kind == jsString && !slices.Contains(f.elem.enum, cv.s) {
				errs.valid = append(errs.valid, fieldError{ip, fmt.Sprintf("`%s` is not a valid enum value for path `%s`.", cv.s, f.name+"."+strconv.Itoa(i))})
			}
			out.arr = append(out.arr, cv)
		}
		return out
	case kNested:
		if v.isNullish() {
			return undefinedValue
		}
		if !v.isObject() {
			errs.cast = append(errs.cast, fieldError{path, fmt.Sprintf("Tried to set nested object field `%s` to primitive value `%s`", f.name, v.toJSString())})
			return undefinedValue
		}
		out := castDoc(f.sub, v, path+".", validate, errs)
		if len(out.obj.keys) == 0 {
			return undefinedValue
		}
		return out
	}
	cv, ok := castPrimitive(f.kind, v)
	if !ok {
		errs.cast = append(errs.cast, fieldError{path, castMessage(kindName(f.kind), v, f.name)})
		return undefinedValue
	}
	if cv.isUndefined() && f.def != nil {
		cv = f.def.clone()
	}
	if validate {
		validatePath(f, cv, path, errs)
	}
	return cv
}

// validatePath runs the built-in validators of one primitive path.
func validatePath(f *field, v *jsValue, path string, errs *docErrors) {
	add := func(msg string) { errs.valid = append(errs.valid, fieldError{path, msg}) }
	if f.required && (v.isNullish() || (v.kind == jsString && v.s == "")) {
		add(fmt.Sprintf("Path `%s` is required.", f.name))
		return
	}
	if len(f.enum) > 0 && !v.isUndefined() && (v.kind != jsString || !slices.Contains(f.enum, v.s)) {
		add(fmt.Sprintf("`%s` is not a valid enum value for path `%s`.", v.toJSString(), f.name))
		return
	}
	if v.kind == jsNumber {
		if f.min != nil && v.n < *f.min {
			add(fmt.Sprintf("Path `%s` (%s) is less than minimum allowed value (%s).", f.name, jsNumberString(v.n), jsNumberString(*f.min)))
		} else if f.max != nil && v.n > *f.max {
			add(fmt.Sprintf("Path `%s` (%s) is more than maximum allowed value (%s).", f.name, jsNumberString(v.n), jsNumberString(*f.max)))
		}
	}
}

// castPrimitive casts v to a primitive SchemaType as mongoose 6 does.
// ok is false for a CastError.
func castPrimitive(k fieldKind, v *jsValue) (*jsValue, bool) {
	if v.isUndefined() {
		return undefinedValue, true
	}
	switch k {
	case kString:
		switch v.kind {
		case jsNull, jsString:
			return v, true
		case jsNumber, jsBool, jsDate:
			return jsStr(v.toJSString()), true
		case jsObject:
			if id := v.prop("_id"); id.isString() {
				return id, true
			}
		}
		return nil, false
	case kNumber:
		switch v.kind {
		case jsNull, jsNumber:
			return v, true
		case jsString:
			if v.s == "" {
				return nullValue, true
			}
			n := jsStringToNumber(v.s)
			if math.IsNaN(n) {
				return nil, false
			}
			return jsNum(n), true
		case jsBool:
			return jsNum(v.toNumber()), true
		}
		return nil, false
	case kBool:
		switch {
		case v.kind == jsNull:
			return v, true
		case (v.kind == jsBool && v.b) || (v.kind == jsNumber && v.n == 1) ||
			(v.kind == jsString && (v.s == "true" || v.s == "1" || v.s == "yes")):
			return jsBoolean(true), true
		case (v.kind == jsBool && !v.b) || (v.kind == jsNumber && v.n == 0) ||
			(v.kind == jsString && (v.s == "false" || v.s == "0" || v.s == "no")):
			return jsBoolean(false), true
		}
		return nil, false
	case kDate:
		return castDate(v)
	case kObjectID:
		switch {
		case v.kind == jsNull:
			return v, true
		case v.isString() && isObjectID(v.s):
			return jsStr(strings.ToLower(v.s)), true
		}
		return nil, false
	}
	return v.clone(), true
}

// firstCastError is the CastError an update throws: mongoose casts an
// update without validators and throws its first cast failure.
func (e *docErrors) firstCastError() string {
	if len(e.cast) == 0 {
		return ""
	}
	return e.cast[0].msg
}

var objectIDRE = regexp.MustCompile(`^[0-9a-fA-F]{24}$`)

func isObjectID(s string) bool { return objectIDRE.MatchString(s) }

var (
	objectIDCounter atomic.Uint32
	objectIDProcess [5]byte
)

func init() {
	_, _ = rand.Read(objectIDProcess[:])
	var b [4]byte
	_, _ = rand.Read(b[:])
	objectIDCounter.Store(binary.BigEndian.Uint32(b[:]))
}

// newObjectID returns a new MongoDB ObjectId as 24 lowercase hex digits:
// seconds since the epoch, a per-process random value and a counter.
func newObjectID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(time.Now().Unix()))
	copy(b[4:9], objectIDProcess[:])
	c := objectIDCounter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}
