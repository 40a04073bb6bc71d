from api.grpc.server import main

main()
