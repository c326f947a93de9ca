package alerting

// Delivery is one alert record on its way to the alerts topic: Key is the
// alert's id and status (Alert.Key), Payload its JSON. A partition keeps it
// in its outbox until the topic has accepted it (state.Delivery is this
// type), so the sinks need nothing of how state is kept.
type Delivery struct {
	Key     string
	Payload []byte
}
