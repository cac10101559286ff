package origin

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The seeded site: a sections tree of 10 top-level sections, 7 children
// each, and 6 children of each of those (500 sections), and articles whose
// content depends only on their number, so that every store seeded with the
// same n holds the same site.

var seedTree = []struct {
	name     string
	children []string
}{
	{"News", []string{"World", "Politics", "Europe", "Nordics", "Environment", "Health", "Education"}},
	{"Sport", []string{"Football", "Ice Hockey", "Athletics", "Motorsport", "Skiing", "Tennis", "Basketball"}},
	{"Business", []string{"Markets", "Economy", "Companies", "Work", "Energy", "Property", "Personal Finance"}},
	{"Culture", []string{"Books", "Music", "Film", "Theatre", "Art", "Television", "Games"}},
	{"Opinion", []string{"Editorials", "Columns", "Letters", "Debate", "Cartoons", "Reader Panel", "Ombudsman"}},
	{"Science", []string{"Space", "Climate", "Medicine", "Nature", "Physics", "History", "Archaeology"}},
	{"Technology", []string{"Gadgets", "Internet", "Security", "Artificial Intelligence", "Startups", "Telecoms", "Software"}},
	{"Travel", []string{"Finland", "Scandinavia", "Europe", "Asia", "Americas", "Africa", "Cruises"}},
	{"Food", []string{"Recipes", "Restaurants", "Wine", "Baking", "Vegetarian", "Seasonal", "Markets"}},
	{"Local", []string{"Helsinki", "Tampere", "Turku", "Oulu", "Lapland", "Espoo", "Vantaa"}},
}

var seedLeaves = []string{"Analysis", "Interviews", "Live", "Features", "Explainers", "Photos"}

// seedSections returns the seeded tree, parents before children, IDs from 1.
func seedSections() []Section {
	var out []Section
	add := func(parent *Section, name string) Section {
		s := Section{ID: int64(len(out) + 1), Slug: Slug(name), Name: name}
		s.Path = "/" + s.Slug + "/"
		if parent != nil {
			s.Parent = parent.ID
			s.Path = parent.Path + s.Slug + "/"
		}
		out = append(out, s)
		return s
	}
	// Breadth first: the top-level sections are 1 to 10.
	tops := make([]Section, 0, len(seedTree))
	for _, top := range seedTree {
		tops = append(tops, add(nil, top.name))
	}
	var mids []Section
	for i, top := range seedTree {
		for _, c := range top.children {
			mids = append(mids, add(&tops[i], c))
		}
	}
	for _, m := range mids {
		for _, l := range seedLeaves {
			add(&m, l)
		}
	}
	return out
}

// seedEpoch is when article 1 was published; article i follows 5 minutes
// after article i-1.
var seedEpoch = time.Date(2025, 1, 1, 6, 0, 0, 0, time.UTC)

// seedArticle returns article number i (from 1) of a seed of n articles
// over sections, and its view count. Only i and n decide the result.
func seedArticle(i, n int64, sections []Section) (Article, int64) {
	r := rand.New(rand.NewPCG(uint64(i), 0x6c616b6b61))
	w := words{r: r}
	sec := sections[r.IntN(len(sections))]
	title := w.title()
	a := Article{
		ID:          i,
		SectionID:   sec.ID,
		Slug:        Slug(title),
		Title:       title,
		Lead:        w.lead(),
		Body:        w.body(),
		Version:     1,
		PublishedAt: seedEpoch.Add(time.Duration(i) * 5 * time.Minute),
	}
	a.UpdatedAt = a.PublishedAt
	a.URL = articleURL(sec.Path, a.ID, a.Slug)
	// Newer articles are read more, with noise.
	views := r.Int64N(20) + 2000*i/max(n, 1)*int64(r.IntN(3))
	return a, views
}

// words writes news-like English from fixed lists.
type words struct{ r *rand.Rand }

func (w words) pick(list []string) string { return list[w.r.IntN(len(list))] }

func (w words) title() string {
	t := w.pick(subjects) + " " + w.pick(verbs) + " " + w.pick(objects)
	switch w.r.IntN(3) {
	case 0:
		t += " in " + w.pick(places)
	case 1:
		t += ": " + w.pick(tails)
	}
	return t
}

func (w words) lead() string {
	return w.pick(subjects) + " " + w.pick(verbs) + " the " + w.pick(objects) + " in " + w.pick(places) + ", a move that " + w.pick(consequences) + "."
}

func (w words) name() string { return w.pick(firstNames) + " " + w.pick(lastNames) }

func (w words) sentence() string {
	switch w.r.IntN(8) {
	case 0:
		return w.pick(subjects) + " " + w.pick(verbs) + " the " + w.pick(objects) + " after " + w.pick(events) + "."
	case 1:
		return "According to " + w.pick(sources) + ", the " + w.pick(objects) + " could affect " + strconv.Itoa(100+w.r.IntN(90000)) + " people in " + w.pick(places) + "."
	case 2:
		return "\"" + w.pick(quotes) + "\", said " + w.pick(roles) + " " + w.name() + "."
	case 3:
		return "The decision comes " + w.pick(spans) + " after " + w.pick(events) + "."
	case 4:
		return w.name() + ", who has followed the issue for years, says the " + w.pick(objects) + " is " + w.pick(adjectives) + "."
	case 5:
		return "Critics argue that the " + w.pick(objects) + " is " + w.pick(adjectives) + ", while supporters point to " + w.pick(benefits) + "."
	case 6:
		return "A final decision on the " + w.pick(objects) + " is expected " + w.pick(whens) + "."
	default:
		return "In " + w.pick(places) + ", " + strings.ToLower(w.pick(subjects)) + " " + w.pick(verbs) + " the " + w.pick(objects) + ", and " + w.pick(sources) + " " + w.pick(reactions) + "."
	}
}

// body is 8 to 13 paragraphs of 3 to 6 sentences, separated by blank
// lines: about 4 KiB.
func (w words) body() string {
	var b strings.Builder
	b.Grow(5 << 10)
	paragraphs := 8 + w.r.IntN(6)
	for p := range paragraphs {
		if p > 0 {
			b.WriteString("\n\n")
		}
		sentences := 3 + w.r.IntN(4)
		for s := range sentences {
			if s > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(w.sentence())
		}
	}
	return b.String()
}

var (
	subjects = []string{"City council", "Government", "Police", "Researchers", "Local residents", "The central bank",
		"Hospital district", "Union", "Ministry of Education", "Students", "Farmers", "Rescue services",
		"The national team", "Tech company", "Energy firm", "Museum", "Airport", "Weather service",
		"Parliament committee", "School board", "Climate scientists", "Fishermen", "Small businesses",
		"Volunteers", "Court", "Ferry operator", "Rail operator", "Startup", "Orchestra", "Coach"}
	verbs = []string{"approves", "rejects", "delays", "unveils", "questions", "backs", "warns about", "plans",
		"cancels", "expands", "investigates", "celebrates", "cuts", "doubles", "reviews", "defends",
		"launches", "criticises", "postpones", "wins", "loses", "renews", "tests", "opens", "closes"}
	objects = []string{"new tram line", "budget proposal", "storm preparations", "school reform", "wind farm",
		"harbour project", "ticket prices", "night trains", "summer festival", "heating costs", "library hours",
		"data centre", "bridge repairs", "ice road", "hospital merger", "bike lanes", "fishing quotas",
		"research grant", "housing plan", "airport expansion", "water quality tests", "election campaign",
		"snow clearing budget", "football stadium", "concert hall", "forest protection", "tax cuts",
		"job programme", "ferry schedule", "vaccine trial"}
	places = []string{"Helsinki", "Tampere", "Turku", "Oulu", "Rovaniemi", "Jyväskylä", "Kuopio", "Lahti",
		"Vaasa", "Joensuu", "Porvoo", "Espoo", "Hanko", "Savonlinna", "Kemi"}
	tails = []string{"what we know so far", "five questions answered", "the full timeline",
		"reactions from across the region", "what happens next", "the numbers behind it"}
	consequences = []string{"surprised many observers", "could change daily life for thousands",
		"has been debated for years", "opponents vow to fight", "will cost more than planned",
		"was welcomed by local businesses"}
	events = []string{"weeks of debate", "a heated public meeting", "last winter's storms", "a critical audit",
		"a petition signed by thousands", "the spring elections", "record traffic figures", "a long dispute"}
	sources = []string{"the city's own estimate", "a new report", "officials", "the local newspaper",
		"a survey published on Monday", "the ministry", "independent experts"}
	quotes = []string{"We have listened carefully to everyone involved", "This is not the end of the story",
		"Nobody wants to see the same mistakes again", "The numbers speak for themselves",
		"We need to act now rather than later", "It is a good day for the whole region",
		"I understand why people are worried", "We will keep a close eye on the costs"}
	roles = []string{"mayor", "professor", "spokesperson", "chief executive", "coach", "researcher",
		"resident", "council member", "head nurse", "police inspector"}
	firstNames = []string{"Aino", "Eero", "Liisa", "Mikko", "Sanna", "Juha", "Kaisa", "Timo", "Elina", "Pekka",
		"Noora", "Antti", "Helmi", "Ville", "Laura"}
	lastNames = []string{"Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Hämäläinen", "Laine", "Heikkinen",
		"Koskinen", "Järvinen", "Lehtonen", "Saarinen", "Salminen"}
	spans      = []string{"two weeks", "barely a month", "almost a year", "only days", "three months"}
	adjectives = []string{"overdue", "too expensive", "a step in the right direction", "rushed", "long awaited",
		"controversial", "necessary", "ambitious", "unrealistic"}
	benefits  = []string{"lower costs", "safer streets", "new jobs", "cleaner water", "shorter queues", "better services"}
	whens     = []string{"before the summer", "next month", "by the end of the year", "after the autumn session", "within weeks"}
	reactions = []string{"expect a long debate", "have asked for more details", "welcome the news",
		"remain sceptical", "say more money is needed"}
)
