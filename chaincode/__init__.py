"""Smart contracts and their runtime: contract API, stub interface, chaincode-as-a-service shim."""
