package projections

import (
	"fmt"
	"reflect"
)

// DiffState lists where two stores' folds differ (nil against empty, a
// length, a string), for a test's failure message.
func DiffState(a, b *Store) []string {
	var out []string
	var walk func(path string, x, y reflect.Value, depth int)
	walk = func(path string, x, y reflect.Value, depth int) {
		if depth > 12 {
			return
		}
		if x.IsValid() != y.IsValid() {
			out = append(out, path+": validity")
			return
		}
		if !x.IsValid() {
			return
		}
		switch x.Kind() {
		case reflect.Pointer, reflect.Interface:
			if x.IsNil() != y.IsNil() {
				out = append(out, path+": nil vs non-nil")
				return
			}
			if x.IsNil() {
				return
			}
			walk(path, x.Elem(), y.Elem(), depth+1)
		case reflect.Struct:
			for i := 0; i < x.NumField(); i++ {
				walk(path+"."+x.Type().Field(i).Name, x.Field(i), y.Field(i), depth+1)
			}
		case reflect.Map:
			if x.IsNil() != y.IsNil() {
				out = append(out, fmt.Sprintf("%s: map nil %v vs %v", path, x.IsNil(), y.IsNil()))
			}
			if x.Len() != y.Len() {
				out = append(out, fmt.Sprintf("%s: map len %d vs %d", path, x.Len(), y.Len()))
				return
			}
			for _, k := range x.MapKeys() {
				walk(fmt.Sprintf("%s[%v]", path, k), x.MapIndex(k), y.MapIndex(k), depth+1)
			}
		case reflect.Slice:
			if x.IsNil() != y.IsNil() {
				out = append(out, fmt.Sprintf("%s: slice nil %v vs %v", path, x.IsNil(), y.IsNil()))
			}
			if x.Len() != y.Len() {
				out = append(out, fmt.Sprintf("%s: slice len %d vs %d", path, x.Len(), y.Len()))
				return
			}
			for i := 0; i < x.Len(); i++ {
				walk(fmt.Sprintf("%s[%d]", path, i), x.Index(i), y.Index(i), depth+1)
			}
		case reflect.Func:
		default:
			if x.Kind() == reflect.String && x.String() != y.String() {
				out = append(out, path+": "+x.String()+" vs "+y.String())
			}
		}
	}
	walk("", reflect.ValueOf(StateOf(a)), reflect.ValueOf(StateOf(b)), 0)
	return out
}
