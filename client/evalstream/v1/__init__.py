"""Generated evalstream.v1 protobuf and gRPC code (make proto). Do not edit."""
