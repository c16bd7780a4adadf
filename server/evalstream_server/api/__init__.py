"""gRPC servicers: protobuf <-> domain translation. No metric math lives here."""
