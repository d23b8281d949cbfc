'use strict';
// An evaluation: each worker reads its own assets (run.py seeds them before the rounds).
const { WorkloadModuleBase } = require('@hyperledger/caliper-core');

class Get extends WorkloadModuleBase {
    constructor() {
        super();
        this.n = 0;
    }

    async submitTransaction() {
        const i = this.n++ % this.roundArguments.assets;
        return this.sutAdapter.sendRequests({
            contractId: this.roundArguments.chaincode,
            contractFunction: 'AssetContract:Get',
            contractArguments: [`w${this.workerIndex}`, `a${i}`],
            readOnly: true,
        });
    }
}

module.exports.createWorkloadModule = () => new Get();
