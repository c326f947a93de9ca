package alerting

// Title is the short name of an alert kind in a language ("回复超时",
// "reply breach"), as summaries and notifications write it; the kind
// itself when the language or kind is unknown.
func Title(language, kind string) string {
	t, ok := summaryTexts[language]
	if !ok {
		t = summaryTexts["zh"]
	}
	if s, ok := t.titles[kind]; ok {
		return s
	}
	return kind
}
