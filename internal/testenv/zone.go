package testenv

import (
	"strconv"
	"time"
)

// NoonZone is an IANA zone where it is now between 12:00 and 13:00, so that
// a test's shop day (service hours from 08:00) lies in today's past and in
// service hours whatever the date and hour the test runs at.
func NoonZone(now time.Time) *time.Location {
	k := 12 - now.UTC().Hour()
	name := "Etc/GMT"
	switch {
	case k > 0:
		name += "-" + strconv.Itoa(k) // Etc/GMT-k is UTC+k
	case k < 0:
		name += "+" + strconv.Itoa(-k)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}
