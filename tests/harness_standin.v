// Stand-in for `wirespeed_core`, used only to prove the replay harness (sim/harness) right.
//
// It has the core's port list (plus two `standin_aux_*` ports the harness knows nothing about,
// to prove that extra ports are tolerated and reachable through peek/poke) and does
// something cheap but fully checkable for every frame on either RX line:
//
// * counts frames, bytes, tuser-flagged frames and malformed beats (tkeep not contiguous from
//   byte 0, a partial tkeep on a non-last beat, tuser on a non-last beat) per line in
//   AXI4-Lite registers;
// * at tlast, emits one 64-byte C2H record (byte 0 = tdata[7:0], all fields little-endian):
//     0  seq        u32  records generated so far (dropped ones included: loss is a hole)
//     4  kind       u8   0xA5
//     5  line       u8   0 = A, 1 = B
//     6  aux        u16  bit 0 = tuser on the tlast beat
//     8  timestamp  u64  cycle of the tlast beat (cycle counter, 0 = first cycle after reset)
//     16 index      u64  frame index on that line since reset
//     24 start      u64  cycle of the first beat
//     32 length     u32  frame length in bytes (popcount of tkeep over all beats)
//     36 beats      u32  beats in the frame
//     40 checksum   u64  c = 0; per beat: c = rotl64(c, 1) ^ (tdata with tkeep-off bytes zeroed)
//     48 zero       16 bytes
//   Records wait in a 16-entry FIFO; when it is full a record is dropped (and counted).
// * AXI4-Lite (32-bit, independent AW/W channels, SLVERR for unmapped addresses):
//     0x00 ID 0x57535344 (RO)   0x04 scratch (RW, byte strobes)   0x08 standin_aux_in[31:0]
//     0x10/0x20 frames A/B      0x14/0x24 bytes A/B               0x18/0x28 tuser frames A/B
//     0x1C/0x2C malformed beats A/B                               0x30 records generated
//     0x34 records dropped      0x38/0x3C cycle counter low/high (RO)

/* verilator lint_off DECLFILENAME */

module standin_line (
    input  wire        clk,
    input  wire        rst,
    input  wire [63:0] cycle,
    input  wire [63:0] tdata,
    input  wire [7:0]  tkeep,
    input  wire        tvalid,
    input  wire        tlast,
    input  wire        tuser,
    output reg         done,
    output reg  [63:0] d_index,
    output reg  [63:0] d_start,
    output reg  [63:0] d_end,
    output reg  [31:0] d_len,
    output reg  [31:0] d_beats,
    output reg  [63:0] d_csum,
    output reg         d_err,
    output reg  [31:0] frames,
    output reg  [31:0] bytes,
    output reg  [31:0] errors,
    output reg  [31:0] malformed
);
    reg        in_frame;
    reg [63:0] start;
    reg [31:0] len;
    reg [31:0] beats;
    reg [63:0] csum;

    wire [63:0] mask = {{8{tkeep[7]}}, {8{tkeep[6]}}, {8{tkeep[5]}}, {8{tkeep[4]}},
                        {8{tkeep[3]}}, {8{tkeep[2]}}, {8{tkeep[1]}}, {8{tkeep[0]}}};
    wire [31:0] nbytes = {31'd0, tkeep[0]} + {31'd0, tkeep[1]} + {31'd0, tkeep[2]}
                       + {31'd0, tkeep[3]} + {31'd0, tkeep[4]} + {31'd0, tkeep[5]}
                       + {31'd0, tkeep[6]} + {31'd0, tkeep[7]};
    // tkeep must be 2^n - 1 with n >= 1 (contiguous from byte 0), and all-ones unless tlast.
    wire        keep_ok = tkeep != 8'h00 && ((tkeep & (tkeep + 8'h01)) == 8'h00)
                       && (tlast || tkeep == 8'hFF);
    wire        bad_beat = !keep_ok || (tuser && !tlast);
    wire [63:0] c_in = in_frame ? csum : 64'd0;
    wire [63:0] c_next = {c_in[62:0], c_in[63]} ^ (tdata & mask);
    wire [31:0] len_next = (in_frame ? len : 32'd0) + nbytes;
    wire [31:0] beats_next = (in_frame ? beats : 32'd0) + 32'd1;

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            in_frame <= 1'b0;
            frames <= 32'd0;
            bytes <= 32'd0;
            errors <= 32'd0;
            malformed <= 32'd0;
        end else if (tvalid) begin
            bytes <= bytes + nbytes;
            if (bad_beat)
                malformed <= malformed + 32'd1;
            if (tlast) begin
                done <= 1'b1;
                d_index <= {32'd0, frames};
                d_start <= in_frame ? start : cycle;
                d_end <= cycle;
                d_len <= len_next;
                d_beats <= beats_next;
                d_csum <= c_next;
                d_err <= tuser;
                frames <= frames + 32'd1;
                if (tuser)
                    errors <= errors + 32'd1;
                in_frame <= 1'b0;
            end else begin
                if (!in_frame)
                    start <= cycle;
                in_frame <= 1'b1;
                len <= len_next;
                beats <= beats_next;
                csum <= c_next;
            end
        end
    end
endmodule

module wirespeed_core (
    input  wire         clk,
    input  wire         rst,

    input  wire [63:0]  s_axis_rx_a_tdata,
    input  wire [7:0]   s_axis_rx_a_tkeep,
    input  wire         s_axis_rx_a_tvalid,
    input  wire         s_axis_rx_a_tlast,
    input  wire         s_axis_rx_a_tuser,

    input  wire [63:0]  s_axis_rx_b_tdata,
    input  wire [7:0]   s_axis_rx_b_tkeep,
    input  wire         s_axis_rx_b_tvalid,
    input  wire         s_axis_rx_b_tlast,
    input  wire         s_axis_rx_b_tuser,

    output wire [511:0] m_axis_c2h_tdata,
    output wire         m_axis_c2h_tvalid,
    input  wire         m_axis_c2h_tready,
    output wire         m_axis_c2h_tlast,

    input  wire [15:0]  s_axil_awaddr,
    input  wire         s_axil_awvalid,
    output wire         s_axil_awready,
    input  wire [31:0]  s_axil_wdata,
    input  wire [3:0]   s_axil_wstrb,
    input  wire         s_axil_wvalid,
    output wire         s_axil_wready,
    output reg  [1:0]   s_axil_bresp,
    output reg          s_axil_bvalid,
    input  wire         s_axil_bready,
    input  wire [15:0]  s_axil_araddr,
    input  wire         s_axil_arvalid,
    output wire         s_axil_arready,
    output reg  [31:0]  s_axil_rdata,
    output reg  [1:0]   s_axil_rresp,
    output reg          s_axil_rvalid,
    input  wire         s_axil_rready,

    input  wire [69:0]  standin_aux_in,
    output reg  [69:0]  standin_aux_out
);
    localparam [7:0] KIND = 8'hA5;
    localparam DEPTH = 16;

    reg [63:0] cycle;
    always @(posedge clk)
        cycle <= rst ? 64'd0 : cycle + 64'd1;

    always @(posedge clk)
        standin_aux_out <= ~standin_aux_in;

    wire        a_done, b_done;
    wire [63:0] a_index, a_start, a_end, a_csum, b_index, b_start, b_end, b_csum;
    wire [31:0] a_len, a_beats, b_len, b_beats;
    wire        a_err, b_err;
    wire [31:0] a_frames, a_bytes, a_errors, a_malformed;
    wire [31:0] b_frames, b_bytes, b_errors, b_malformed;

    standin_line line_a (
        .clk(clk), .rst(rst), .cycle(cycle),
        .tdata(s_axis_rx_a_tdata), .tkeep(s_axis_rx_a_tkeep), .tvalid(s_axis_rx_a_tvalid),
        .tlast(s_axis_rx_a_tlast), .tuser(s_axis_rx_a_tuser),
        .done(a_done), .d_index(a_index), .d_start(a_start), .d_end(a_end), .d_len(a_len),
        .d_beats(a_beats), .d_csum(a_csum), .d_err(a_err),
        .frames(a_frames), .bytes(a_bytes), .errors(a_errors), .malformed(a_malformed));

    standin_line line_b (
        .clk(clk), .rst(rst), .cycle(cycle),
        .tdata(s_axis_rx_b_tdata), .tkeep(s_axis_rx_b_tkeep), .tvalid(s_axis_rx_b_tvalid),
        .tlast(s_axis_rx_b_tlast), .tuser(s_axis_rx_b_tuser),
        .done(b_done), .d_index(b_index), .d_start(b_start), .d_end(b_end), .d_len(b_len),
        .d_beats(b_beats), .d_csum(b_csum), .d_err(b_err),
        .frames(b_frames), .bytes(b_bytes), .errors(b_errors), .malformed(b_malformed));

    // ---- record FIFO: up to two writes (A before B) and one read per cycle ----
    reg [511:0] fifo [0:DEPTH-1];
    reg [3:0]   wp, rp;
    reg [4:0]   count;
    reg [31:0]  seq, generated, dropped;

    wire [4:0]  space = DEPTH - count;
    wire        pop = m_axis_c2h_tvalid && m_axis_c2h_tready;
    wire        put_a = a_done && space != 5'd0;
    wire        put_b = b_done && space > {4'd0, put_a};
    wire [31:0] seq_b = seq + {31'd0, a_done};

    wire [511:0] rec_a = {128'd0, a_csum, a_beats, a_len, a_start, a_index, a_end,
                          15'd0, a_err, 8'd0, KIND, seq};
    wire [511:0] rec_b = {128'd0, b_csum, b_beats, b_len, b_start, b_index, b_end,
                          15'd0, b_err, 8'd1, KIND, seq_b};

    assign m_axis_c2h_tvalid = count != 5'd0;
    assign m_axis_c2h_tdata = fifo[rp];
    assign m_axis_c2h_tlast = 1'b1;

    always @(posedge clk) begin
        if (rst) begin
            wp <= 4'd0;
            rp <= 4'd0;
            count <= 5'd0;
            seq <= 32'd0;
            generated <= 32'd0;
            dropped <= 32'd0;
        end else begin
            if (put_a)
                fifo[wp] <= rec_a;
            if (put_b)
                fifo[wp + {3'd0, put_a}] <= rec_b;
            wp <= wp + {3'd0, put_a} + {3'd0, put_b};
            rp <= rp + {3'd0, pop};
            count <= count + {4'd0, put_a} + {4'd0, put_b} - {4'd0, pop};
            seq <= seq + {31'd0, a_done} + {31'd0, b_done};
            generated <= generated + {31'd0, a_done} + {31'd0, b_done};
            dropped <= dropped + {31'd0, a_done && !put_a} + {31'd0, b_done && !put_b};
        end
    end

    // ---- AXI4-Lite slave: AW and W are accepted independently, B after both ----
    reg        aw_full, w_full;
    reg [15:0] aw_addr;
    reg [31:0] w_data;
    reg [3:0]  w_strb;
    reg [31:0] scratch;

    assign s_axil_awready = !aw_full;
    assign s_axil_wready = !w_full;
    assign s_axil_arready = !s_axil_rvalid;

    always @(posedge clk) begin
        if (rst) begin
            aw_full <= 1'b0;
            w_full <= 1'b0;
            s_axil_bvalid <= 1'b0;
            s_axil_bresp <= 2'd0;
            s_axil_rvalid <= 1'b0;
            s_axil_rresp <= 2'd0;
            s_axil_rdata <= 32'd0;
            scratch <= 32'd0;
        end else begin
            if (s_axil_awvalid && s_axil_awready) begin
                aw_full <= 1'b1;
                aw_addr <= s_axil_awaddr;
            end
            if (s_axil_wvalid && s_axil_wready) begin
                w_full <= 1'b1;
                w_data <= s_axil_wdata;
                w_strb <= s_axil_wstrb;
            end
            if (s_axil_bvalid && s_axil_bready)
                s_axil_bvalid <= 1'b0;
            if (aw_full && w_full && !s_axil_bvalid) begin
                aw_full <= 1'b0;
                w_full <= 1'b0;
                s_axil_bvalid <= 1'b1;
                if (aw_addr == 16'h0004) begin
                    s_axil_bresp <= 2'd0;
                    if (w_strb[0]) scratch[7:0] <= w_data[7:0];
                    if (w_strb[1]) scratch[15:8] <= w_data[15:8];
                    if (w_strb[2]) scratch[23:16] <= w_data[23:16];
                    if (w_strb[3]) scratch[31:24] <= w_data[31:24];
                end else begin
                    s_axil_bresp <= 2'd2;
                end
            end

            if (s_axil_rvalid && s_axil_rready)
                s_axil_rvalid <= 1'b0;
            if (s_axil_arvalid && s_axil_arready) begin
                s_axil_rvalid <= 1'b1;
                s_axil_rresp <= 2'd0;
                case (s_axil_araddr)
                    16'h0000: s_axil_rdata <= 32'h57535344;
                    16'h0004: s_axil_rdata <= scratch;
                    16'h0008: s_axil_rdata <= standin_aux_in[31:0];
                    16'h0010: s_axil_rdata <= a_frames;
                    16'h0014: s_axil_rdata <= a_bytes;
                    16'h0018: s_axil_rdata <= a_errors;
                    16'h001C: s_axil_rdata <= a_malformed;
                    16'h0020: s_axil_rdata <= b_frames;
                    16'h0024: s_axil_rdata <= b_bytes;
                    16'h0028: s_axil_rdata <= b_errors;
                    16'h002C: s_axil_rdata <= b_malformed;
                    16'h0030: s_axil_rdata <= generated;
                    16'h0034: s_axil_rdata <= dropped;
                    16'h0038: s_axil_rdata <= cycle[31:0];
                    16'h003C: s_axil_rdata <= cycle[63:32];
                    default: begin
                        s_axil_rdata <= 32'hDEADBEEF;
                        s_axil_rresp <= 2'd2;
                    end
                endcase
            end
        end
    end
endmodule
