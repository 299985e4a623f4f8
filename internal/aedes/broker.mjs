// The Aedes broker of internal/aedes (tests only): MQTT 3.1 / 3.1.1 on a plain TCP
// port and over WebSocket (path /mqtt, subprotocols "mqtt" and "mqttv3.1") on
// another, both on 127.0.0.1, in-memory persistence (sessions live as long as the
// process). Usage: node broker.mjs TCP_PORT WS_PORT. Prints one line
// "aedes ready tcp=PORT ws=PORT" once both listen; exits 0 on SIGTERM after closing
// both servers and the broker; exits 2 when a port cannot be bound.
import net from 'node:net'
import http from 'node:http'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const [tcpPort, wsPort] = process.argv.slice(2).map(Number)
const host = '127.0.0.1'
const broker = await Aedes.createBroker()

broker.on('clientError', (client, err) => console.log(`client ${client?.id} error: ${err.message}`))
broker.on('connectionError', (client, err) => console.log(`connection error: ${err.message}`))

const tcp = net.createServer(broker.handle)
const web = http.createServer((req, res) => { res.writeHead(404); res.end('MQTT over WebSocket is at /mqtt\n') })
const wss = new WebSocketServer({
  server: web,
  path: '/mqtt',
  handleProtocols: (offered) => ['mqtt', 'mqttv3.1'].find((p) => offered.has(p)) ?? false
})
wss.on('connection', (ws) => broker.handle(createWebSocketStream(ws)))

function listen (server, port) {
  return new Promise((resolve) => {
    server.once('error', (err) => { console.log(`listen ${host}:${port}: ${err.message}`); process.exit(2) })
    server.listen(port, host, () => resolve(server.address().port))
  })
}

const tcpBound = await listen(tcp, tcpPort)
const wsBound = await listen(web, wsPort)
console.log(`aedes ready tcp=${tcpBound} ws=${wsBound}`)

process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate()
  wss.close()
  web.close()
  tcp.close()
  broker.close(() => process.exit(0))
})
