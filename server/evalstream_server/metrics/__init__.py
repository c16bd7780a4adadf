"""Pure metric code: sufficient statistics plus finishes, no grpc or protobuf."""
