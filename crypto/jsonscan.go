package crypto

// maxNestingDepth is encoding/json's limit: deeper JSON is not valid.
const maxNestingDepth = 10000

// strPlain marks the bytes that stand in a JSON string as themselves: not
// a quote, a backslash or a control character.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// scanJSON reports whether data is one valid JSON value, as json.Valid
// does, and whether it is compact: no whitespace outside its strings, as
// json.Marshal writes it (what json.Compact would not change). One pass,
// skipping the contents of strings (most of a token) a table lookup at a
// time; json.Valid and a second pass for compactness took 12 µs of a
// 2 KiB token's Seal.
func scanJSON(data []byte) (valid, compact bool) {
	var stack []byte // '{' or '[' per open container
	i, n := 0, len(data)
	compact = true
	space := func() {
		for i < n && isSpace(data[i]) {
			i++
			compact = false
		}
	}
	// key scans an object's key and its colon; the value comes next.
	key := func() bool {
		space()
		if i == n || data[i] != '"' {
			return false
		}
		if i = scanString(data, i); i < 0 {
			return false
		}
		space()
		if i == n || data[i] != ':' {
			return false
		}
		i++
		return true
	}
value:
	for {
		space()
		if i == n {
			return false, compact
		}
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) == maxNestingDepth {
				return false, compact
			}
			i++
			space()
			if i < n && data[i] == c+2 { // '}' or ']': empty
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' && !key() {
				return false, compact
			}
			continue value
		case '"':
			if i = scanString(data, i); i < 0 {
				return false, compact
			}
		case 't':
			if !hasAt(data, i, "true") {
				return false, compact
			}
			i += 4
		case 'f':
			if !hasAt(data, i, "false") {
				return false, compact
			}
			i += 5
		case 'n':
			if !hasAt(data, i, "null") {
				return false, compact
			}
			i += 4
		default:
			if i = scanNumber(data, i); i < 0 {
				return false, compact
			}
		}
		// After a value: the end, a separator, or the end of containers.
		for {
			space()
			if len(stack) == 0 {
				return i == n, compact
			}
			if i == n {
				return false, compact
			}
			top := stack[len(stack)-1]
			switch data[i] {
			case ',':
				i++
				if top == '{' && !key() {
					return false, compact
				}
				continue value
			case top + 2:
				i++
				stack = stack[:len(stack)-1]
			default:
				return false, compact
			}
		}
	}
}

// scanString scans the string that starts with the quote at data[i], and
// returns the index after its closing quote, or -1 if it is not valid.
func scanString(data []byte, i int) int {
	for i++; i < len(data); {
		c := data[i]
		if strPlain[c] {
			i++
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			if i+1 == len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return -1
				}
				for _, h := range data[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
	return -1
}

// scanNumber scans the number that starts at data[i], and returns the
// index after it, or -1 if there is none.
func scanNumber(data []byte, i int) int {
	digits := func() int { // how many digits from i
		j := i
		for j < len(data) && '0' <= data[j] && data[j] <= '9' {
			j++
		}
		return j - i
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i += digits()
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		d := digits()
		if d == 0 {
			return -1
		}
		i += d
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		d := digits()
		if d == 0 {
			return -1
		}
		i += d
	}
	return i
}

func hasAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}
