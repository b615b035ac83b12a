package fcm

import (
	_ "firebase.google.com/go/v4/messaging"
	_ "firebase.google.com/go/v4"
	_ "firebase.google.com/go/v4/errorutils"
	_ "google.golang.org/api/option"
	_ "github.com/sideshow/apns2"
	_ "github.com/sideshow/apns2/token"
	_ "github.com/sideshow/apns2/payload"
	_ "github.com/sideshow/apns2/certificate"
	_ "golang.org/x/net/http2"
)
