package openhimtest

import (
	"fmt"
	"strconv"
	"strings"
)

// mask is what core shows instead of a password config value.
const mask = "**********"

// jsError is a JavaScript exception: its name decides whether core answers
// 400 (ValidationError) or 500, and its message is what core reports.
type jsError struct {
	name string
	msg  string
}

// Error is String(err), e.g. "ValidationError: URN is required".
func (e *jsError) Error() string { return e.name + ": " + e.msg }

func validationError(format string, args ...any) *jsError {
	return &jsError{name: "ValidationError", msg: fmt.Sprintf(format, args...)}
}

func typeError(format string, args ...any) *jsError {
	return &jsError{name: "TypeError", msg: fmt.Sprintf(format, args...)}
}

// readProp is v[k], throwing the TypeError JavaScript throws for null and
// undefined.
func readProp(v *jsValue, k string) (*jsValue, *jsError) {
	if v.isNullish() {
		return nil, typeError("Cannot read properties of %s (reading '%s')", v.toJSString(), k)
	}
	return v.prop(k), nil
}

// validateConfigDefs is core's validateConfigDefs (src/api/mediators.js):
// a struct needs a template whose items have param and type and are not
// structs; an option needs a non-empty values array.
func validateConfigDefs(defs *jsValue) *jsError {
	for _, def := range defs.arrayFrom() {
		t, err := readProp(def, "type")
		if err != nil {
			return err
		}
		param := def.prop("param").toJSString()
		switch {
		case t.isString() && t.s == "struct":
			tmpl := def.prop("template")
			if !tmpl.truthy() {
				return validationError("Must specify a template for struct param '%s'", param)
			}
			for _, item := range tmpl.arrayFrom() {
				p, err := readProp(item, "param")
				if err != nil {
					return err
				}
				if !p.truthy() {
					return validationError("Must specify field 'param' in template definition for param '%s'", param)
				}
				it := item.prop("type")
				if !it.truthy() {
					return validationError("Must specify field 'type' in template definition for param '%s'", param)
				}
				if it.isString() && it.s == "struct" {
					return validationError("May not recursively specify 'struct' in template definitions (param '%s')", param)
				}
			}
		case t.isString() && t.s == "option":
			vals := def.prop("values")
			if !vals.isArray() {
				return validationError("Expected field 'values' to be an array (option param '%s')", param)
			}
			if len(vals.arr) == 0 {
				return validationError("Must specify a values array for option param '%s'", param)
			}
		}
	}
	return nil
}

// validateConfig is core's validateConfig: every key needs a configDef with
// that param, and its value must suit the def's type (as an array of them
// when the def has array:true).
func validateConfig(defs, config *jsValue) *jsError {
	keys := config.ownKeys()
	if len(keys) > 0 && !defs.isArray() {
		return typeError("configDef.filter is not a function")
	}
	for _, param := range keys {
		var matching []*jsValue
		for _, d := range defs.arr {
			p, err := readProp(d, "param")
			if err != nil {
				return err
			}
			if strictEquals(p, jsStr(param)) {
				matching = append(matching, d)
			}
		}
		if len(matching) == 0 {
			return validationError("No config definition found for parameter %s", param)
		}
		val := config.prop(param)
		for _, d := range matching {
			if !d.prop("array").truthy() {
				if err := validateConfigField(param, d, val); err != nil {
					return err
				}
				continue
			}
			if !val.isArray() {
				return validationError("Expected config param %s to be an array of type %s", param, d.prop("type").toJSString())
			}
			for i, e := range val.arr {
				if err := validateConfigField(param+"["+strconv.Itoa(i)+"]", d, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// validateConfigField is core's validateConfigField.
func validateConfigField(param string, def, field *jsValue) *jsError {
	t := def.prop("type")
	if !t.isString() {
		return nil
	}
	switch t.s {
	case "string":
		if !field.isString() {
			return validationError("Expected config param %s to be a string.", param)
		}
	case "bigstring":
		if !field.isString() {
			return validationError("Expected config param %s to be a large string.", param)
		}
	case "number":
		if field.typeOf() != "number" {
			return validationError("Expected config param %s to be a number.", param)
		}
	case "bool":
		if field.typeOf() != "boolean" {
			return validationError("Expected config param %s to be a boolean.", param)
		}
	case "option":
		vals := def.prop("values")
		found := false
		switch {
		case vals.isNullish():
			return typeError("Cannot read properties of %s (reading 'indexOf')", vals.toJSString())
		case vals.isString():
			found = strings.Contains(vals.s, field.toJSString())
		case !vals.isArray():
			return typeError("def.values.indexOf is not a function")
		}
		for _, v := range vals.arrayFrom() {
			if vals.isArray() && strictEquals(v, field) {
				found = true
			}
		}
		if !found {
			return validationError("Expected config param %s to be one of %s", param, vals.toJSString())
		}
	case "map":
		if field.typeOf() != "object" {
			return validationError("Expected config param %s to be an object.", param)
		}
		for _, k := range field.ownKeys() {
			if !field.prop(k).isString() {
				return validationError("Expected config param %s to only contain string values.", param)
			}
		}
	case "struct":
		if field.typeOf() != "object" {
			return validationError("Expected config param %s to be an object.", param)
		}
		tmpl, err := readProp(def, "template")
		if err != nil {
			return err
		}
		if tmpl.isUndefined() {
			return typeError("Cannot read properties of undefined (reading 'map')")
		}
		if !tmpl.isArray() {
			return typeError("def.template.map is not a function")
		}
		var names []*jsValue
		for _, tp := range tmpl.arr {
			p, err := readProp(tp, "param")
			if err != nil {
				return err
			}
			names = append(names, p)
		}
		for _, k := range field.ownKeys() {
			found := false
			for _, n := range names {
				if strictEquals(n, jsStr(k)) {
					found = true
				}
			}
			if !found {
				return validationError("Field %s is not defined in template definition for config param %s.", k, param)
			}
		}
	case "password":
		if !field.isString() {
			return validationError("Expected config param %s to be a string representing a password.", param)
		}
	}
	return nil
}

// maskPasswords is core's maskPasswords, used by GET /mediators/:urn: each
// truthy password value becomes "**********" (every element of an array
// password), recursing into structs.
func maskPasswords(defs, config *jsValue) *jsError {
	if !config.truthy() {
		return nil
	}
	if !defs.isArray() {
		return typeError("defs.forEach is not a function")
	}
	for _, d := range defs.arr {
		if d.isNullish() {
			return typeError("Cannot read properties of %s (reading 'type')", d.toJSString())
		}
		param := d.prop("param").toJSString()
		t := d.prop("type")
		v := config.prop(param)
		if t.isString() && t.s == "password" && v.truthy() {
			if d.prop("array").truthy() {
				if !v.isArray() {
					return typeError("config[d.param].map is not a function")
				}
				masked := jsArr()
				for range v.arr {
					masked.arr = append(masked.arr, jsStr(mask))
				}
				config.setProp(param, masked)
			} else {
				config.setProp(param, jsStr(mask))
			}
		}
		if t.isString() && t.s == "struct" && v.truthy() {
			if err := maskPasswords(d.prop("template"), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreMaskedPasswords is core's restoreMaskedPasswords, run by PUT
// /mediators/:urn/config: a password still "**********" in the new config
// gets the stored value back.
func restoreMaskedPasswords(defs, masked, config *jsValue) *jsError {
	if !masked.truthy() || !config.truthy() {
		return nil
	}
	if !defs.isArray() {
		return typeError("defs.forEach is not a function")
	}
	for _, d := range defs.arr {
		if d.isNullish() {
			return typeError("Cannot read properties of %s (reading 'type')", d.toJSString())
		}
		param := d.prop("param").toJSString()
		t := d.prop("type")
		mv, cv := masked.prop(param), config.prop(param)
		if t.isString() && t.s == "password" && mv.truthy() && cv.truthy() {
			switch {
			case d.prop("array").truthy():
				if !mv.isArray() {
					return typeError("maskedConfig[d.param].forEach is not a function")
				}
				for i, p := range mv.arr {
					if p.isString() && p.s == mask {
						mv.arr[i] = cv.prop(strconv.Itoa(i)).clone()
					}
				}
			case mv.isString() && mv.s == mask:
				masked.setProp(param, cv.clone())
			}
		}
		if t.isString() && t.s == "struct" && mv.truthy() && cv.truthy() {
			if err := restoreMaskedPasswords(d.prop("template"), mv, cv); err != nil {
				return err
			}
		}
	}
	return nil
}
