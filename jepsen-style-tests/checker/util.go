package checker

import (
	"cmp"
	"strconv"
)

func cmpInt64(a, b int64) int { return cmp.Compare(a, b) }

func itoa(i int) string { return strconv.Itoa(i) }

func utoa(u uint64) string { return strconv.FormatUint(u, 10) }
