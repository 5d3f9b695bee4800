module github.com/one-network/sdk-go

go 1.19
