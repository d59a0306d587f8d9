// The cluster e2e suite (cluster-suite.ts) on a real 3-master Redis Cluster
// (Debian's redis-server in cluster mode, created with redis-cli --cluster
// create): every multi-key command must stay within one hash slot.
import { clusterSuite } from './cluster-suite.js'

clusterSuite(true)
