package dialplan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Holiday handling of a time window.
const (
	holidaysExclude = iota // the window does not match on a holiday (the default)
	holidaysOnly           // the window matches only on a holiday
	holidaysIgnore         // holidays make no difference
)

var holidayModes = map[string]int{"exclude": holidaysExclude, "only": holidaysOnly, "ignore": holidaysIgnore}

// window is a weekly time window in one zone, read on the local wall clock.
// A window whose to is before its from spans midnight and belongs to the day
// it starts on (days and holidays are checked for that day).
type window struct {
	days     uint8 // bit d set: time.Weekday d is in
	from, to int   // minutes after local midnight, to exclusive; from == to: all day
	loc      *time.Location
	holidays int
}

const allDays = 0x7f

func (w window) match(t time.Time, holidays map[string]bool) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	y, mo, d := lt.Date()
	switch {
	case w.from == w.to: // all day
	case w.from < w.to:
		if m < w.from || m >= w.to {
			return false
		}
	case m >= w.from: // spans midnight: the evening part
	case m < w.to: // spans midnight: the morning part started yesterday
		d--
	default:
		return false
	}
	start := time.Date(y, mo, d, 12, 0, 0, 0, w.loc) // noon: clear of DST shifts
	if w.days&(1<<start.Weekday()) == 0 {
		return false
	}
	switch hol := holidays[start.Format(time.DateOnly)]; w.holidays {
	case holidaysExclude:
		return !hol
	case holidaysOnly:
		return hol
	}
	return true
}

func (w window) key() string {
	return fmt.Sprintf("%02x %d-%d %s %d", w.days, w.from, w.to, w.loc, w.holidays)
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// parseDays reads "mon", "mon-fri" or "fri-mon" (ranges wrap past sunday).
func parseDays(s string) (uint8, error) {
	lo, hi, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	a, ok := dayNames[strings.TrimSpace(lo)]
	if !ok {
		return 0, fmt.Errorf("unknown day %q (expected mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)", s)
	}
	if !isRange {
		return 1 << a, nil
	}
	b, ok := dayNames[strings.TrimSpace(hi)]
	if !ok {
		return 0, fmt.Errorf("unknown day range %q (expected a range like mon-fri or fri-mon)", s)
	}
	var days uint8
	for d := a; ; d = (d + 1) % 7 {
		days |= 1 << d
		if d == b {
			return days, nil
		}
	}
}

// parseClock reads "HH:MM" (24-hour; "24:00" only when end is set) as minutes.
func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || err1 != nil || strings.Trim(h+m, "0123456789") != "" || err2 != nil || len(h) < 1 || len(h) > 2 || len(m) != 2 || hh < 0 || mm < 0 || mm > 59:
	case hh < 24:
		return hh*60 + mm, nil
	case hh == 24 && mm == 0 && end:
		return 24 * 60, nil
	}
	if end {
		return 0, fmt.Errorf("bad time %q (expected HH:MM from 00:00 to 24:00)", s)
	}
	return 0, fmt.Errorf("bad time %q (expected HH:MM from 00:00 to 23:59)", s)
}
