package pipeline

// Fields of a user's preferences hash (Keys.Preferences): "c:<channel>" = "1"
// when the user muted that channel, "k:<category>" = "1" when they muted that
// category. pipeline/prefs replaces the whole hash on every update (plus its
// version field) after storing the record in PostgreSQL; resolve reads
// exactly the two fields a campaign cares about per user with one HMGET.
const (
	prefChannelPrefix  = "c:"
	prefCategoryPrefix = "k:"
)

// PrefChannel is the preferences field that mutes a channel.
func PrefChannel(channel string) string { return prefChannelPrefix + channel }

// PrefCategory is the preferences field that mutes a category.
func PrefCategory(category string) string { return prefCategoryPrefix + category }
