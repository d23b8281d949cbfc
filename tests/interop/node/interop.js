'use strict';
/*
 * Drives a ledger node (the embedded node or a Fabric peer) with the official Fabric Gateway
 * client, @hyperledger/fabric-gateway, and checks every answer against what Fabric's own gateway
 * gives. Run by tests/interop/test_node_client.py:
 *
 *   node interop.js '{"address": "127.0.0.1:7051", "channel": "serums", "chaincode": "assets",
 *                     "contract": "AssetContract", "mspId": "LothianMSP", "certPath": ..., "keyPath": ...,
 *                     "tlsRootCertPath": ..., "tlsClientCertPath": ..., "tlsClientKeyPath": ...,
 *                     "serverName": ...}'
 *
 * Prints one JSON object: {"checks": {name: {"ok": bool, "detail": ...}}, "ok": bool}.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const {
    connect, signers, hash, checkpointers, CommitError, EndorseError, GatewayError,
} = require('@hyperledger/fabric-gateway');
const { common, msp, peer } = require('@hyperledger/fabric-protos');

const cfg = JSON.parse(process.argv[2]);
const VALID = peer.TxValidationCode.VALID;
const MVCC_READ_CONFLICT = peer.TxValidationCode.MVCC_READ_CONFLICT;
const utf8 = new TextDecoder();
const results = {};

function newGrpcClient() {
    let creds = grpc.credentials.createInsecure();
    if (cfg.tlsRootCertPath) {
        const key = cfg.tlsClientKeyPath ? fs.readFileSync(cfg.tlsClientKeyPath) : null;
        const cert = cfg.tlsClientCertPath ? fs.readFileSync(cfg.tlsClientCertPath) : null;
        creds = grpc.credentials.createSsl(fs.readFileSync(cfg.tlsRootCertPath), key, cert);
    }
    const options = cfg.serverName ? { 'grpc.ssl_target_name_override': cfg.serverName } : {};
    return new grpc.Client(cfg.address, creds, options);
}

const identity = { mspId: cfg.mspId, credentials: fs.readFileSync(cfg.certPath) };
const privateKey = crypto.createPrivateKey(fs.readFileSync(cfg.keyPath));
const deadlines = (ms) => ({ deadline: Date.now() + ms });
const options = {
    hash: hash.sha256,
    evaluateOptions: () => deadlines(10000),
    endorseOptions: () => deadlines(15000),
    submitOptions: () => deadlines(10000),
    commitStatusOptions: () => deadlines(60000),
};

function gatewayWith(client, signer) {
    return connect({ client, identity, signer, ...options });
}

async function check(name, fn) {
    try {
        const detail = await withTimeout(fn(), 60000, name);
        results[name] = { ok: true, detail: detail ?? null };
    } catch (err) {
        results[name] = { ok: false, detail: describe(err) };
    }
}

function describe(err) {
    if (err instanceof GatewayError || (err && typeof err.code === 'number')) {
        return { error: err.constructor.name, code: err.code, message: err.message,
            details: (err.details || []).map((d) => d.message) };
    }
    return { error: String(err && err.stack || err) };
}

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms); }),
    ]).finally(() => clearTimeout(timer));
}

function expect(cond, message) {
    if (!cond) throw new Error(message);
}

async function expectGrpcError(promise, code, what, pattern) {
    try {
        await promise;
    } catch (err) {
        expect(err.code === code, `${what}: expected gRPC code ${code}, got ${err.code} (${err.message})`);
        const details = (err.details || []).map((d) => d.message);
        expect(!pattern || pattern.test([err.message, ...details].join(' | ')),
            `${what}: expected ${pattern}, got ${err.message} ${JSON.stringify(details)}`);
        return { code: err.code, message: err.message, details };
    }
    throw new Error(`${what}: expected gRPC code ${code}, but the call succeeded`);
}

/** The next `n` items of a closeable async iterable, then close it. */
async function take(iterable, n) {
    const out = [];
    try {
        for await (const item of iterable) {
            out.push(item);
            if (out.length >= n) break;
        }
    } finally {
        iterable.close();
    }
    return out;
}

// --- block checks in JavaScript: Fabric's header hash (ASN.1 DER), data hash, orderer signature

function derLength(n) {
    if (n < 128) return Buffer.from([n]);
    const bytes = [];
    for (; n > 0; n >>= 8) bytes.unshift(n & 0xff);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag, body) => Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
function derInteger(value) {
    let hex = BigInt(value).toString(16);
    if (hex.length % 2) hex = '0' + hex;
    let body = Buffer.from(hex, 'hex');
    if (body[0] & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
    return tlv(0x02, body);
}
function headerBytes(header) {
    return tlv(0x30, Buffer.concat([
        derInteger(header.getNumber()), tlv(0x04, Buffer.from(header.getPreviousHash_asU8())),
        tlv(0x04, Buffer.from(header.getDataHash_asU8())),
    ]));
}
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();

function verifyOrdererSignature(block) {
    const md = common.Metadata.deserializeBinary(block.getMetadata().getMetadataList_asU8()[0]);
    const [sig] = md.getSignaturesList();
    if (!sig && Number(block.getHeader().getNumber()) === 0) return null;  // configtxgen's genesis is unsigned
    expect(sig, `block ${block.getHeader().getNumber()}: no orderer signature`);
    const sh = common.SignatureHeader.deserializeBinary(sig.getSignatureHeader_asU8());
    const creator = msp.SerializedIdentity.deserializeBinary(sh.getCreator_asU8());
    const cert = new crypto.X509Certificate(Buffer.from(creator.getIdBytes_asU8()));
    const message = Buffer.concat([Buffer.from(md.getValue_asU8()), Buffer.from(sig.getSignatureHeader_asU8()),
        headerBytes(block.getHeader())]);
    expect(crypto.verify('sha256', message, cert.publicKey, Buffer.from(sig.getSignature_asU8())),
        `block ${block.getHeader().getNumber()}: orderer signature does not verify`);
    return creator.getMspid();
}

async function main() {
    const client = newGrpcClient();
    const gateway = gatewayWith(client, signers.newPrivateKeySigner(privateKey));
    const network = gateway.getNetwork(cfg.channel);
    const contract = network.getContract(cfg.chaincode, cfg.contract);
    const run = crypto.randomBytes(4).toString('hex');
    const owner = `interop-${run}`;
    const submitted = [];  // {txId, block}

    await check('evaluate', async () => {
        await contract.submitTransaction('Put', owner, 'seed', JSON.stringify({ v: 0 }));
        const got = JSON.parse(utf8.decode(await contract.evaluateTransaction('Get', owner, 'seed')));
        expect(got.owner === owner && got.value.v === 0, `unexpected evaluate result ${JSON.stringify(got)}`);
        return got;
    });

    await check('submit', async () => {
        const result = JSON.parse(utf8.decode(
            await contract.submitTransaction('Put', owner, 'a1', JSON.stringify({ v: 1 }))));
        expect(result.version === 1, `unexpected submit result ${JSON.stringify(result)}`);
        return result;
    });

    await check('submitAsync', async () => {
        const tx = await contract.submitAsync('Put', { arguments: [owner, 'a2', JSON.stringify({ v: 2 })] });
        const result = JSON.parse(utf8.decode(tx.getResult()));
        const status = await tx.getStatus();
        expect(status.successful && status.code === VALID, `status ${status.code}`);
        expect(status.transactionId === tx.getTransactionId(), 'transaction id differs');
        submitted.push({ txId: status.transactionId, block: status.blockNumber });
        return { version: result.version, block: Number(status.blockNumber) };
    });

    await check('offline signing', async () => {
        const offline = gatewayWith(client, undefined);
        const c = offline.getNetwork(cfg.channel).getContract(cfg.chaincode, cfg.contract);
        const unsigned = c.newProposal('Put', { arguments: [owner, 'a3', JSON.stringify({ v: 3 })] });
        // the bytes travel to the signer and back
        const proposal = offline.newSignedProposal(unsigned.getBytes(), await signDigest(unsigned.getDigest()));
        const unsignedTx = await proposal.endorse();
        const tx = offline.newSignedTransaction(unsignedTx.getBytes(), await signDigest(unsignedTx.getDigest()));
        const unsignedCommit = await tx.submit();
        const commit = offline.newSignedCommit(unsignedCommit.getBytes(),
            await signDigest(unsignedCommit.getDigest()));
        const status = await commit.getStatus();
        expect(status.successful, `status ${status.code}`);
        submitted.push({ txId: status.transactionId, block: status.blockNumber });
        return { transactionId: status.transactionId, block: Number(status.blockNumber) };

        async function signDigest(digest) {
            return signers.newPrivateKeySigner(privateKey)(digest);  // elsewhere: the patient's device
        }
    });

    await check('transient data', async () => {
        const result = await contract.evaluate('Get', {
            arguments: [owner, 'a1'], transientData: { secret: Buffer.from('not on the ledger') },
        });
        return JSON.parse(utf8.decode(result)).version;
    });

    // a few more transactions, each its own block, for the event checks
    const more = [];
    for (let i = 0; i < 3; i++) {
        const tx = await contract.submitAsync('Put', { arguments: [owner, `e${i}`, JSON.stringify({ i })] });
        const status = await tx.getStatus();
        more.push({ txId: tx.getTransactionId(), block: status.blockNumber });
    }
    const first = submitted.length ? submitted[0] : more[0];

    await check('chaincode events with in-memory checkpointer', async () => {
        const all = [...submitted, ...more];
        const events = await take(await network.getChaincodeEvents(cfg.chaincode, { startBlock: first.block }),
            all.length);
        expect(events.map((e) => e.transactionId).join() === all.map((t) => t.txId).join(),
            `events out of order or missing: ${events.map((e) => e.transactionId)}`);
        expect(events.every((e) => e.eventName === 'AssetPut' && e.chaincodeName === cfg.chaincode),
            'unexpected event names');
        // read two, checkpoint the second, resume: exactly the rest
        const checkpointer = checkpointers.inMemory();
        const firstTwo = await take(await network.getChaincodeEvents(cfg.chaincode, { startBlock: first.block }), 2);
        await checkpointer.checkpointChaincodeEvent(firstTwo[1]);
        const rest = await take(await network.getChaincodeEvents(cfg.chaincode, { checkpoint: checkpointer }),
            all.length - 2);
        expect(rest.map((e) => e.transactionId).join() === all.slice(2).map((t) => t.txId).join(),
            `resumed events differ: ${rest.map((e) => e.transactionId)}`);
        return { events: events.length };
    });

    await check('chaincode events resume after a transaction in an earlier block', async () => {
        // a checkpoint whose block is past the transaction: Fabric starts at the block holding it
        const checkpointer = checkpointers.inMemory();
        await checkpointer.checkpointTransaction(more[2].block + 3n, more[0].txId);
        const next = await take(await network.getChaincodeEvents(cfg.chaincode, { checkpoint: checkpointer }), 2);
        expect(next.map((e) => e.transactionId).join() === [more[1].txId, more[2].txId].join(),
            `got ${next.map((e) => e.transactionId)}`);
    });

    await check('chaincode events with file checkpointer', async () => {
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'interop-')), 'checkpoint.json');
        let checkpointer = await checkpointers.file(file);
        const [e0] = await take(await network.getChaincodeEvents(cfg.chaincode, { startBlock: more[0].block }), 1);
        await checkpointer.checkpointChaincodeEvent(e0);
        checkpointer = await checkpointers.file(file);  // a restarted listener
        const [e1] = await take(await network.getChaincodeEvents(cfg.chaincode, { checkpoint: checkpointer }), 1);
        expect(e1.transactionId === more[1].txId, `resumed at ${e1.transactionId}`);
    });

    await check('block events', async () => {
        const height = Number(more[2].block) + 1;
        const blocks = await take(await network.getBlockEvents({ startBlock: 0n }), height);
        let previous = Buffer.alloc(0);
        const signers_ = new Set();
        for (const [i, block] of blocks.entries()) {
            const header = block.getHeader();
            expect(Number(header.getNumber()) === i, `block ${header.getNumber()} at position ${i}`);
            expect(Buffer.from(header.getPreviousHash_asU8()).equals(previous), `block ${i}: hash chain broken`);
            const data = block.getData().getDataList_asU8().map((d) => Buffer.from(d));
            expect(sha256(Buffer.concat(data)).equals(Buffer.from(header.getDataHash_asU8())),
                `block ${i}: data hash`);
            const signer = verifyOrdererSignature(block);
            if (signer) signers_.add(signer);
            const md = block.getMetadata().getMetadataList_asU8();
            expect(md[2].length === data.length, `block ${i}: validation codes`);
            // COMMIT_HASH as Fabric writes it: a common.Metadata whose value is the hash (none in block 0)
            const commitHash = common.Metadata.deserializeBinary(md[4]).getValue_asU8();
            expect(i === 0 ? md[4].length === 0 : commitHash.length === 32,
                `block ${i}: COMMIT_HASH is not as Fabric writes it (${md[4].length} B)`);
            previous = sha256(headerBytes(header));
        }
        return { blocks: blocks.length, ordererMsps: [...signers_] };
    });

    await check('genesis block is a complete channel configuration', async () => {
        const [genesis] = await take(await network.getBlockEvents({ startBlock: 0n }), 1);
        // the genesis block is a complete channel configuration
        const env = common.Envelope.deserializeBinary(genesis.getData().getDataList_asU8()[0]);
        const payload = common.Payload.deserializeBinary(env.getPayload_asU8());
        const config = common.ConfigEnvelope.deserializeBinary(payload.getData_asU8()).getConfig();
        const groups = config.getChannelGroup().getGroupsMap();
        const app = groups.get('Application');
        const ord = groups.get('Orderer');
        expect(app && ord, 'genesis: no Application or Orderer group');
        const policies = config.getChannelGroup().getPoliciesMap();
        for (const p of ['Readers', 'Writers', 'Admins']) expect(policies.get(p), `genesis: no channel ${p} policy`);
        expect(app.getPoliciesMap().get('Endorsement'), 'genesis: no Application Endorsement policy');
        expect(ord.getPoliciesMap().get('BlockValidation'), 'genesis: no Orderer BlockValidation policy');
        expect(config.getChannelGroup().getValuesMap().get('Capabilities'), 'genesis: no channel capabilities');
        expect(ord.getValuesMap().get('BatchSize') && ord.getValuesMap().get('ConsensusType'),
            'genesis: no orderer values');
        return { groups: [...groups.keys()] };
    });

    await check('filtered block events', async () => {
        const [fb] = await take(await network.getFilteredBlockEvents({ startBlock: more[0].block }), 1);
        expect(BigInt(fb.getNumber()) === more[0].block, `filtered block ${fb.getNumber()}`);
        expect(fb.getChannelId() === cfg.channel, 'channel id');
        const tx = fb.getFilteredTransactionsList().find((t) => t.getTxid() === more[0].txId);
        expect(tx, 'transaction missing from the filtered block');
        expect(tx.getTxValidationCode() === VALID, `validation code ${tx.getTxValidationCode()}`);
        const [action] = tx.getTransactionActions().getChaincodeActionsList();
        const ev = action.getChaincodeEvent();
        expect(ev.getEventName() === 'AssetPut' && ev.getPayload_asU8().length === 0,
            'filtered chaincode event should carry its name and no payload');
        return { number: Number(fb.getNumber()), transactions: fb.getFilteredTransactionsList().length };
    });

    await check('private data block events', async () => {
        const [bp] = await take(await network.getBlockAndPrivateDataEvents({ startBlock: more[1].block }), 1);
        expect(BigInt(bp.getBlock().getHeader().getNumber()) === more[1].block, 'block number');
        return { privateDataEntries: bp.getPrivateDataMapMap().getLength() };
    });

    await check('MVCC conflict is a CommitError', async () => {
        const counter = `counter-${run}`;
        const a = await contract.newProposal('Increment', { arguments: [counter, '1'] }).endorse();
        const b = await contract.newProposal('Increment', { arguments: [counter, '1'] }).endorse();
        const [sa, sb] = await Promise.all([(await a.submit()).getStatus(), (await b.submit()).getStatus()]);
        const codes = [sa.code, sb.code].sort();
        expect(codes.join() === [VALID, MVCC_READ_CONFLICT].sort().join(), `codes ${codes}`);
        const c1 = await contract.newProposal('Increment', { arguments: [counter, '1'] }).endorse();
        const c2 = await contract.newProposal('Increment', { arguments: [counter, '1'] }).endorse();
        const outcomes = await Promise.allSettled([c1, c2].map(async (t) => {
            const commit = await t.submit();
            const status = await commit.getStatus();
            if (!status.successful) throw new CommitError({ code: status.code, transactionId: status.transactionId,
                message: 'not committed' });
            return status;
        }));
        expect(outcomes.some((o) => o.status === 'rejected' && o.reason instanceof CommitError), 'no CommitError');
    });

    // --- error codes, as Fabric's gateway gives them
    const codes = grpc.status;
    await check('error: chaincode refusal on evaluate is UNKNOWN with the chaincode message', async () => {
        const e = await expectGrpcError(contract.evaluateTransaction('Get', owner, 'missing'), codes.UNKNOWN,
            'evaluate');
        expect(/chaincode response 404/.test(e.message), e.message);
        return e;
    });
    await check('error: chaincode refusal on submit is EndorseError ABORTED with details', async () => {
        try {
            await contract.submitTransaction('Put', 'only-one-arg');
        } catch (err) {
            expect(err instanceof EndorseError && err.code === codes.ABORTED, `${err.constructor.name} ${err.code}`);
            expect(err.details.length && /chaincode response 400/.test(err.details[0].message), 'details');
            return { code: err.code, details: err.details.map((d) => d.message) };
        }
        throw new Error('submit succeeded');
    });
    await check('error: unknown chaincode is FAILED_PRECONDITION', async () => {
        const missing = network.getContract('no-such-chaincode');
        await expectGrpcError(missing.evaluateTransaction('x'), codes.FAILED_PRECONDITION, 'evaluate',
            /no peers available to evaluate chaincode no-such-chaincode in channel/);
        return expectGrpcError(missing.submitTransaction('x'), codes.FAILED_PRECONDITION, 'endorse',
            /No metadata was found for chaincode no-such-chaincode in channel/);
    });
    await check('error: unknown channel is UNAVAILABLE', async () => {
        const other = gateway.getNetwork('no-such-channel').getContract(cfg.chaincode, cfg.contract);
        return expectGrpcError(other.evaluateTransaction('Get', owner, 'a1'), codes.UNAVAILABLE, 'evaluate',
            /failed to get config for channel \[no-such-channel\]/);
    });
    await check('error: unknown channel chaincode events are PERMISSION_DENIED', async () => {
        const events = await gateway.getNetwork('no-such-channel').getChaincodeEvents(cfg.chaincode,
            { startBlock: 0n });
        return expectGrpcError(take(events, 1), codes.PERMISSION_DENIED, 'chaincode events',
            /Failed to get policy manager for channel \[no-such-channel\]/);
    });
    await check('error: unknown channel block events end with status NOT_FOUND', async () => {
        const blocks = await gateway.getNetwork('no-such-channel').getBlockEvents({ startBlock: 0n });
        try {
            await take(blocks, 1);
        } catch (err) {
            expect(/404|NOT_FOUND/.test(String(err.message)), err.message);
            return err.message;
        }
        throw new Error('no error');
    });
    await check('error: events of an unknown chaincode open and yield nothing', async () => {
        const events = await network.getChaincodeEvents('no-such-chaincode', { startBlock: 0n });
        const first = take(events, 1).then(() => 'an event', (err) => `error ${err.code} ${err.message}`);
        const outcome = await Promise.race([first, new Promise((r) => setTimeout(() => r('open'), 1500))]);
        events.close();
        expect(outcome === 'open', outcome);
    });

    const rogueKey = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const rogue = gatewayWith(client, signers.newPrivateKeySigner(rogueKey));
    const rogueContract = rogue.getNetwork(cfg.channel).getContract(cfg.chaincode, cfg.contract);
    await check('error: bad signature on evaluate is FAILED_PRECONDITION "access denied"', async () => {
        return expectGrpcError(rogueContract.evaluateTransaction('Get', owner, 'a1'), codes.FAILED_PRECONDITION,
            'evaluate', new RegExp(`access denied: channel \\[${cfg.channel}\\] creator org \\[${cfg.mspId}\\]`));
    });
    await check('error: bad signature on endorse is ABORTED with "access denied" details', async () => {
        const e = await expectGrpcError(rogueContract.submitTransaction('Put', owner, 'x', '{}'), codes.ABORTED,
            'endorse');
        expect(e.details.some((d) => /access denied/.test(d)), JSON.stringify(e.details));
        return e;
    });
    await check('error: bad signature on submit is ABORTED status=FORBIDDEN', async () => {
        const tx = await contract.newProposal('Put', { arguments: [owner, 'forged', '{}'] }).endorse();
        const forged = rogue.newSignedTransaction(tx.getBytes(),
            await signers.newPrivateKeySigner(rogueKey)(tx.getDigest()));
        const e = await expectGrpcError(forged.submit(), codes.ABORTED, 'submit');
        expect(/status=FORBIDDEN/.test(e.message), e.message);
        return e;
    });
    await check('error: bad signature on chaincode events is PERMISSION_DENIED', async () => {
        const events = await rogue.getNetwork(cfg.channel).getChaincodeEvents(cfg.chaincode, { startBlock: 0n });
        return expectGrpcError(take(events, 1), codes.PERMISSION_DENIED, 'chaincode events',
            /Failed evaluating policy on signed data .*Readers/);
    });
    await check('error: bad signature on block events ends with status FORBIDDEN', async () => {
        for (const kind of ['getBlockEvents', 'getFilteredBlockEvents', 'getBlockAndPrivateDataEvents']) {
            const blocks = await rogue.getNetwork(cfg.channel)[kind]({ startBlock: 0n });
            try {
                await take(blocks, 1);
                throw new Error(`${kind}: no error`);
            } catch (err) {
                expect(/403|FORBIDDEN/.test(String(err.message)), `${kind}: ${err.message}`);
            }
        }
    });

    rogue.close();
    gateway.close();
    client.close();
}

main().then(
    () => {
        const ok = Object.values(results).every((r) => r.ok);
        process.stdout.write(JSON.stringify({ ok, checks: results }) + '\n');
        process.exit(0);
    },
    (err) => {
        process.stdout.write(JSON.stringify({ ok: false, checks: results, fatal: describe(err) }) + '\n');
        process.exit(1);
    },
);
