"""Reliability drills on the local stack: faults under load (`make drill`), the blue-green switch
(`make drill-bluegreen`), with the failover cluster and delay proxy they use."""
