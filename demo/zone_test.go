package demo

import (
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/config"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func at(layout string, loc *time.Location) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", layout, loc)
	if err != nil {
		panic(err)
	}
	return t
}

var zoneCases = []struct {
	name      string
	tz        string // the requested zone, Asia/Shanghai when empty
	now       time.Time
	platforms []string
	zone      string
	label     string // what the screen shows: the zone, or its UTC offset for a stand-in
	local     string // shop-local time the demo runs at
	note      []string
}{
	{name: "afternoon in Shanghai", now: at("2026-11-24 14:00", shanghai), platforms: []string{"pdd", "taobao"},
		zone: "Asia/Shanghai", label: "Asia/Shanghai", local: "14:00", note: []string{"it is 14:00 in Asia/Shanghai, inside service hours (08:00–23:00)"}},
	{name: "night", now: at("2026-11-24 02:13", shanghai), platforms: []string{"pdd"},
		zone: "Etc/GMT+4", label: "UTC−4", local: "14:13", note: []string{"it is 02:13 in Asia/Shanghai, outside service hours (08:00–23:00)",
			"the demo shops run at UTC−4 (Etc/GMT+4 in the config), where it is 14:13"}},
	{name: "just opened: the urgent buyers' messages would fall before opening", now: at("2026-11-24 08:02", shanghai),
		platforms: []string{"pdd"}, zone: "Etc/GMT-14", label: "UTC+14", local: "14:02", note: []string{"too close to the edge of service hours"}},
	{name: "a JD shop opens at 09:00", now: at("2026-11-24 08:30", shanghai), platforms: []string{"pdd", "jd"},
		zone: "Etc/GMT-14", label: "UTC+14", local: "14:30", note: []string{"outside service hours"}},
	{name: "near closing", now: at("2026-11-24 22:45", shanghai), platforms: []string{"pdd"},
		zone: "Etc/GMT", label: "UTC", local: "14:45", note: []string{"it is 22:45 in Asia/Shanghai, too close to the edge"}},
	{name: "half an hour before closing is enough", now: at("2026-11-24 22:29", shanghai), platforms: []string{"pdd"},
		zone: "Asia/Shanghai", label: "Asia/Shanghai", local: "22:29"},
	{name: "UTC midnight shifts ahead of UTC by 14 hours", tz: "UTC", now: at("2026-11-24 00:30", time.UTC), platforms: []string{"pdd"},
		zone: "Etc/GMT-14", label: "UTC+14", local: "14:30"},
	{name: "UTC 23:10 shifts behind UTC by 9 hours", now: at("2026-11-24 23:10", time.UTC), platforms: []string{"pdd"},
		zone: "Etc/GMT+9", label: "UTC−9", local: "14:10"},
	{name: "UTC 14:00 needs no offset", tz: "Pacific/Auckland", now: at("2026-11-24 14:20", time.UTC), platforms: []string{"pdd"},
		zone: "Etc/GMT", label: "UTC", local: "14:20"},
}

func TestChooseZone(t *testing.T) {
	for _, c := range zoneCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			if c.tz != "" {
				cfg.Timezone = c.tz
			}
			for i, p := range c.platforms {
				cfg.Shops["shop-"+string(rune('a'+i))] = config.ShopOverride{Platform: p}
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			z, err := chooseZone(cfg, c.now)
			if err != nil {
				t.Fatal(err)
			}
			if z.Name != c.zone || z.Loc.String() != c.zone {
				t.Errorf("zone = %s (%s), want %s", z.Name, z.Loc, c.zone)
			}
			if z.Label != c.label {
				t.Errorf("label = %q, want %q", z.Label, c.label)
			}
			if z.Shifted != (c.zone != cfg.Timezone) {
				t.Errorf("Shifted = %v for zone %s", z.Shifted, z.Name)
			}
			if got := c.now.In(z.Loc).Format("15:04"); got != c.local {
				t.Errorf("shop-local time = %s, want %s", got, c.local)
			}
			for _, n := range c.note {
				if !strings.Contains(z.Note, n) {
					t.Errorf("note %q lacks %q", z.Note, n)
				}
			}
			// The chosen zone must be one every shop is open in, with room.
			cfg.Timezone = z.Name
			rules := cfg.Rules()
			for shop := range cfg.Shops {
				for _, tm := range []time.Time{c.now.Add(-lookBack), c.now, c.now.Add(lookAhead)} {
					if !rules(shop).Hours.Open(tm) {
						t.Errorf("%s is closed at %s in %s", shop, tm.In(z.Loc).Format("15:04"), z.Name)
					}
				}
			}
		})
	}
}

func TestOffsetLabel(t *testing.T) {
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	newYork, _ := time.LoadLocation("America/New_York")
	now := at("2026-11-24 14:00", time.UTC)
	for _, c := range []struct {
		loc  *time.Location
		want string
	}{{shanghai, "UTC+8"}, {kolkata, "UTC+5:30"}, {newYork, "UTC−5"}, {time.UTC, "UTC"}} {
		if got := offsetLabel(c.loc, now); got != c.want {
			t.Errorf("%s: %q, want %q", c.loc, got, c.want)
		}
	}
}

func TestOpening(t *testing.T) {
	cfg := config.Default()
	got, err := opening(cfg, at("2026-11-24 14:13", shanghai), shanghai)
	if err != nil {
		t.Fatal(err)
	}
	if want := at("2026-11-24 08:00", shanghai); !got.Equal(want) {
		t.Errorf("opening = %s, want %s", got, want)
	}
	cfg.ServiceHours = []config.TimeRange{{Start: "13:00", End: "22:00"}, {Start: "09:30", End: "12:00"}}
	got, _ = opening(cfg, at("2026-11-24 14:13", shanghai), shanghai)
	if want := at("2026-11-24 09:30", shanghai); !got.Equal(want) {
		t.Errorf("opening of split hours = %s, want the earliest range's start %s", got, want)
	}
}
