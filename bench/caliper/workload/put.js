'use strict';
// A read-write transaction: each worker creates or replaces its own assets (AssetContract:Put reads
// the old version and writes the new one), the workload of bench/ledger.py.
const { WorkloadModuleBase } = require('@hyperledger/caliper-core');

class Put extends WorkloadModuleBase {
    constructor() {
        super();
        this.n = 0;
    }

    async submitTransaction() {
        const i = this.n++ % this.roundArguments.assets;
        return this.sutAdapter.sendRequests({
            contractId: this.roundArguments.chaincode,
            contractFunction: 'AssetContract:Put',
            contractArguments: [`w${this.workerIndex}`, `a${i}`, '{"dose_mg":120,"unit":"mg/m2"}'],
            readOnly: false,
        });
    }
}

module.exports.createWorkloadModule = () => new Put();
