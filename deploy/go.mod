module github.com/koophone-gateway/koophone-gateway/deploy

go 1.26.8
